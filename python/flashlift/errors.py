"""The errors flashlift raises. Each message names the problem and where it is."""


class FlashliftError(Exception):
    """Base class: catch this to handle any flashlift failure."""


class InputError(FlashliftError, ValueError):
    """The caller passed something flashlift cannot use (arguments, target, file)."""


class ImportError_(FlashliftError):
    """The PyTorch model could not be captured or lowered to linalg."""


class CompileError(FlashliftError):
    """IREE failed to compile the module."""


class ModuleFormatError(FlashliftError, ValueError):
    """A file given to flashlift.load is not a flashlift module."""


class SaveError(FlashliftError, OSError):
    """CompiledModel.save could not write the file (the previous file, if any, is unchanged)."""


class TargetError(FlashliftError):
    """A module cannot run on this machine: compiled for another CPU architecture, or for CPU
    features this machine lacks."""

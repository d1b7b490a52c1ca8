"""flashlift: find hand-written attention in PyTorch models and make it FlashAttention.

    import flashlift
    compiled = flashlift.compile_model(model, (x,), target="cpu")
    y = compiled(x)
    print(compiled.report)
    compiled.save("model.flashlift"); flashlift.load("model.flashlift")(x)

`load` and `CompiledModel` need only the IREE runtime; compiling imports the IREE compiler
and torch-mlir lazily.
"""

from flashlift.errors import (CompileError, FlashliftError, ImportError_, InputError, ModuleFormatError, SaveError,
                              TargetError)
from flashlift.parameters import Parameters, save_parameters
from flashlift.runtime import CompiledModel, load

__all__ = ["compile_model", "import_model", "load", "CompiledModel", "Parameters", "save_parameters", "FlashliftError", "InputError",
           "CompileError", "ImportError_", "ModuleFormatError", "SaveError", "TargetError"]


def compile_model(*args, **kwargs):
    from flashlift.api import compile_model as _compile_model

    return _compile_model(*args, **kwargs)


compile_model.__doc__ = "See flashlift.api.compile_model."


def import_model(*args, **kwargs):
    from flashlift.api import import_model as _import_model

    return _import_model(*args, **kwargs)


import_model.__doc__ = "See flashlift.api.import_model."

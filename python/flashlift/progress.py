"""What compile_model is doing, while it does it: its stages with their elapsed times.

Everything goes through Python's `logging`, logger "flashlift": each stage logs "NAME ..."
when it starts (DEBUG) and "NAME: 3.2 s" when it ends (INFO), and a stage with a count (the
kernels built per site) logs its steps at DEBUG. Turn it up or off as any logger:

    logging.getLogger("flashlift").setLevel(logging.WARNING)   # quiet
    logging.getLogger("flashlift").setLevel(logging.DEBUG)     # every start and step

When nobody has configured logging (the root logger has no handlers) and stderr is a
terminal, `TerminalHandler` shows the stages on stderr: the running stage on one line
("flashlift: iree-compile ... 12 s" with a bar where the stage has a count), replaced by
its elapsed time when it ends. Not interactive (a pipe, a file, CI): nothing is printed.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time

log = logging.getLogger("flashlift")


class TerminalHandler(logging.Handler):
    """Shows the stages on an interactive stderr (see the module doc): `running` puts the
    running stage on the current line; an emitted record (a stage's end, a warning) replaces
    it with a line of its own."""

    def __init__(self, stream=None):
        super().__init__(logging.INFO)
        self.stream = stream
        self._open = False  # a "running" line without its newline yet

    def _out(self):
        return self.stream or sys.stderr

    def active(self) -> bool:
        out = self._out()
        return not logging.getLogger().handlers and hasattr(out, "isatty") and out.isatty()

    def running(self, text: str) -> None:
        if log.isEnabledFor(logging.INFO) and self.active():
            self._write("\r\033[K" + "flashlift: " + text)
            self._open = True

    def emit(self, record: logging.LogRecord) -> None:
        if self.active():
            self._write(("\r\033[K" if self._open else "") + "flashlift: " + record.getMessage() + "\n")
            self._open = False

    def _write(self, text: str) -> None:
        try:
            out = self._out()
            out.write(text)
            out.flush()
        except (OSError, ValueError):  # a closed terminal: stay quiet
            pass


_HANDLER = TerminalHandler()
log.addHandler(_HANDLER)
if log.level == logging.NOTSET:
    log.setLevel(logging.INFO)


@contextlib.contextmanager
def stage(name: str):
    """Times the block as stage `name`; yields a `step(i, n, what)` for stages with a count."""
    start = time.perf_counter()
    log.debug("%s ...", name)
    _HANDLER.running(f"{name} ...")

    def step(i: int, n: int, what: str = "") -> None:
        width = 20
        done = width * i // max(n, 1)
        log.debug("%s: %d/%d %s", name, i, n, what)
        _HANDLER.running(f"{name} [{'#' * done}{'.' * (width - done)}] {i}/{n} {what}")

    try:
        yield step
    except BaseException:
        log.info("%s: failed after %.1f s", name, time.perf_counter() - start)
        raise
    log.info("%s: %.1f s", name, time.perf_counter() - start)

"""What compile_model is doing, while it does it: its stages with their elapsed times.

Two outputs, both off by the `flashlift` logger's level as any library's:

* Python's `logging`, logger "flashlift": each stage logs "NAME ..." when it starts (DEBUG)
  and "NAME: 3.2 s" when it ends (INFO), and a stage with a count (the passes) logs its
  steps at DEBUG. As a library should, flashlift sets no level: the records reach your
  handlers when you ask for them (`logging.getLogger("flashlift").setLevel(logging.INFO)`).
* A status line on an interactive stderr (`Terminal`), shown when nobody has configured
  logging (the root logger has no handlers) and the flashlift logger's level is unset or
  INFO and below: the running stage on one line ("flashlift: iree-compile ... " with a bar
  where the stage has a count), replaced by its elapsed time when it ends. Not interactive
  (a pipe, a file, CI) or `setLevel(logging.WARNING)`: nothing is printed.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time

log = logging.getLogger("flashlift")


class Terminal:
    """The status line on an interactive stderr (see the module doc): `running` puts the
    running stage on the current line, `finished` replaces it with a line of its own."""

    def __init__(self, stream=None):
        self.stream = stream
        self._open = False  # a "running" line without its newline yet

    def _out(self):
        return self.stream or sys.stderr

    def active(self) -> bool:
        out = self._out()
        shown = log.level == logging.NOTSET or log.level <= logging.INFO
        return shown and not logging.getLogger().handlers and hasattr(out, "isatty") and out.isatty()

    def running(self, text: str) -> None:
        if self.active():
            self._write("\r\033[K" + "flashlift: " + text)
            self._open = True

    def finished(self, text: str) -> None:
        if self.active():
            self._write(("\r\033[K" if self._open else "") + "flashlift: " + text + "\n")
            self._open = False

    def _write(self, text: str) -> None:
        try:
            out = self._out()
            out.write(text)
            out.flush()
        except (OSError, ValueError):  # a closed terminal: stay quiet
            pass


TERMINAL = Terminal()


@contextlib.contextmanager
def stage(name: str):
    """Times the block as stage `name`; yields a `step(i, n, what)` for stages with a count."""
    start = time.perf_counter()
    log.debug("%s ...", name)
    TERMINAL.running(f"{name} ...")

    def step(i: int, n: int, what: str = "") -> None:
        width = 20
        done = width * i // max(n, 1)
        log.debug("%s: %d/%d %s", name, i, n, what)
        TERMINAL.running(f"{name} [{'#' * done}{'.' * (width - done)}] {i}/{n} {what}")

    try:
        yield step
    except BaseException:
        _end("%s: failed after %.1f s", name, time.perf_counter() - start)
        raise
    _end("%s: %.1f s", name, time.perf_counter() - start)


def _end(fmt: str, *args) -> None:
    log.info(fmt, *args)
    TERMINAL.finished(fmt % args)

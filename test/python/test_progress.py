"""compile_model's progress: stages with elapsed times through the "flashlift" logger, shown on
an interactive stderr only, silenced like any logger."""

import io
import logging

import torch

import flashlift
from flashlift import progress
from test_foundation import PlainAttention


class Terminal(io.StringIO):
    def isatty(self):
        return True


def _compile():
    q = torch.randn(1, 2, 8, 4)
    return flashlift.compile_model(PlainAttention(), (q, q, q))


def test_stages_are_logged_with_their_times(caplog):
    with caplog.at_level(logging.INFO, logger="flashlift"):
        _compile()
    messages = [r.getMessage() for r in caplog.records if r.name == "flashlift"]
    for stage in ("torch.export of PlainAttention", "torch-mlir import to linalg", "passes for cpu", "iree-compile for cpu"):
        assert any(m.startswith(stage) and m.endswith(" s") for m in messages), (stage, messages)


def test_a_terminal_shows_the_stages_and_a_pipe_shows_nothing(monkeypatch):
    tty, pipe = Terminal(), io.StringIO()
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # nobody configured logging
    monkeypatch.setattr(progress.TERMINAL, "stream", tty)
    _compile()
    shown = tty.getvalue()
    assert "flashlift: passes for cpu [" in shown  # the running stage, with its pass count
    assert "\r\033[Kflashlift: iree-compile for cpu" in shown and shown.endswith(" s\n")
    monkeypatch.setattr(progress.TERMINAL, "stream", pipe)
    _compile()
    assert pipe.getvalue() == ""


def test_the_logger_silences_it(monkeypatch):
    tty = Terminal()
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(progress.TERMINAL, "stream", tty)
    logger = logging.getLogger("flashlift")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        _compile()
    finally:
        logger.setLevel(level)
    assert tty.getvalue() == ""


def test_a_failed_stage_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="flashlift"):
        try:
            with progress.stage("demo"):
                raise RuntimeError("boom")
        except RuntimeError:
            pass
    assert any(r.getMessage().startswith("demo: failed after") for r in caplog.records)


def test_a_configured_root_logger_gets_no_info_unless_asked(monkeypatch):
    """flashlift sets no level of its own: an application logging at WARNING (or a library's
    implicit basicConfig) sees no stage records; asking the flashlift logger for INFO does."""
    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [Collect()])
    monkeypatch.setattr(root, "level", logging.WARNING)
    root.manager._clear_cache()
    _compile()
    assert not [m for m in seen if "iree-compile" in m], seen
    logger = logging.getLogger("flashlift")
    logger.setLevel(logging.INFO)
    try:
        _compile()
    finally:
        logger.setLevel(logging.NOTSET)
    assert any(m.startswith("iree-compile for cpu") for m in seen), seen

"""Progress and log lines on stderr, from the main process and from its workers.

A build can run for minutes; silence looks like a hang. Levels: the default shows each phase and
each model's completion as it finishes, -v adds details (fidelity measurements, EM steps,
epochs), -vv debug, -q warnings only. When stderr is a terminal a click progress bar counts
finished models and log lines print above it; otherwise (CI, log files) plain lines only.
"""

from __future__ import annotations

import logging
import sys

import click

PROGRESS = 25  # between INFO (details, -v) and WARNING: shown by default
logging.addLevelName(PROGRESS, "PROGRESS")
log = logging.getLogger("yonoc")


def level_for(verbose: int, quiet: bool) -> int:
    if quiet:
        return logging.WARNING
    return {0: PROGRESS, 1: logging.INFO}.get(verbose, logging.DEBUG)


class _StderrHandler(logging.Handler):
    """One `yonoc: ` line per record; with a bar on screen, the line goes above the bar."""

    def __init__(self):
        super().__init__()
        self.bar = None

    def emit(self, record):
        try:
            msg = self.format(record)
            stream = sys.stderr
            if self.bar is not None:
                stream.write("\r\x1b[K")
            stream.write(msg + "\n")
            if self.bar is not None:
                self.bar.render_progress()
            stream.flush()
        except Exception:
            self.handleError(record)


_handler = _StderrHandler()
_handler.setFormatter(logging.Formatter("yonoc: %(message)s"))


def setup(level: int) -> None:
    """The `yonoc` logger writes to stderr at `level` (idempotent)."""
    if _handler not in log.handlers:
        log.addHandler(_handler)
    log.propagate = False
    log.setLevel(level)


def note(msg: str, *args) -> None:
    """A progress line shown at default verbosity (phases, per-model completion)."""
    log.log(PROGRESS, msg, *args)


def step(what: str, i: int, n: int) -> None:
    """A detail line for one step of a long loop (k-means book, EM step, epoch): -v."""
    log.info("%s %d/%d", what, i, n)


class Bar:
    """Counts finished models: a click progress bar on a terminal, nothing otherwise (the
    per-model lines are the progress then)."""

    def __init__(self, total: int, label: str):
        show = (
            total > 1
            and sys.stderr.isatty()
            and log.isEnabledFor(PROGRESS)
            and _handler in log.handlers
        )
        self._bar = (
            click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True)
            if show
            else None
        )

    def __enter__(self):
        if self._bar is not None:
            self._bar.__enter__()
            _handler.bar = self._bar
        return self

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def __exit__(self, *exc):
        if self._bar is not None:
            _handler.bar = None
            if exc[0] is not None:  # no half bar before the error / interrupt line; cursor on
                sys.stderr.write("\r\x1b[K\x1b[?25h")
                sys.stderr.flush()
                self._bar.finished = True
                self._bar.render_finish = lambda: None
            self._bar.__exit__(*exc)
        return False


def clear_line() -> None:
    """Wipe a progress bar left on the terminal (before an error or `interrupted` line)."""
    if _handler.bar is not None:
        _handler.bar = None
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()

"""`python -m yonoc` and the `yonoc` console script: the CLI behind a Ctrl-C guard that also
covers the CLI's own imports (a traceback there would break the one-line promise)."""

import os
import signal
import sys


def _interrupted_while_importing(signum, frame) -> None:
    """Ctrl-C before the CLI runs: nothing is written yet, so stop at once. Raising
    KeyboardInterrupt here instead could be swallowed by a library's import-time
    `except BaseException` and the build would go on (a full-suite run once saw a -q build
    interrupted at 0.3 s finish with exit 0; not reproduced since)."""
    sys.stderr.write("yonoc: interrupted\n")
    sys.stderr.flush()
    os._exit(130)  # no interpreter shutdown with half-imported modules


def entry() -> None:
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted_while_importing)
    try:
        from .cli import interrupted, main
    except KeyboardInterrupt:  # a Ctrl-C that came before the guard above
        _interrupted_while_importing(signal.SIGINT, None)
    if signal.getsignal(signal.SIGINT) is _interrupted_while_importing:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main(prog_name="yonoc")
    except KeyboardInterrupt:
        interrupted()


if __name__ == "__main__":
    entry()

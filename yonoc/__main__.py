"""`python -m yonoc` and the `yonoc` console script: the CLI behind a Ctrl-C guard that also
covers the CLI's own imports (a traceback there would break the one-line promise)."""

import os
import sys


def entry() -> None:
    try:
        from .cli import interrupted, main
    except KeyboardInterrupt:  # Ctrl-C while Python imports the CLI: same line, same code
        sys.stderr.write("yonoc: interrupted\n")
        sys.stderr.flush()
        os._exit(130)  # no interpreter shutdown with half-imported modules
    try:
        main(prog_name="yonoc")
    except KeyboardInterrupt:
        interrupted()


if __name__ == "__main__":
    entry()

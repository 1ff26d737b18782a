"""`python -m yonoc`: the same command line as `yonoc`."""

import os
import sys

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

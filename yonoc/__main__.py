"""`python -m yonoc`: the same command line as `yonoc`."""

import sys

try:
    from .cli import interrupted, main
except KeyboardInterrupt:  # Ctrl-C while Python imports the CLI: same line, same code
    sys.stderr.write("yonoc: interrupted\n")
    sys.exit(130)

try:
    main(prog_name="yonoc")
except KeyboardInterrupt:
    interrupted()

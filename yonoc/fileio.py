"""Atomic output: write a temporary file beside the target, then rename over it.

A crash or Ctrl-C leaves either the old file or the complete new one, never a partial file.
"""

from __future__ import annotations

import os
import tempfile

from .errors import InputError, YonocError


def write_atomic(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise YonocError(f"{path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".yonoc-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_input(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None

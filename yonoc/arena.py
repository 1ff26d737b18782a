"""Tensor arena sizes that work: the smallest arena TFLM allocates a model in, plus a margin.

TFLM's record of what it used after `AllocateTensors` is below what allocation needs at its
peak for some models, so the size is found by bisection on whether allocation succeeds. TFLM
can crash (not just fail) on a too-small arena, so every probe runs in a worker process: one
per build process, reused for every probe of every model and restarted only when it dies (a
death or a hang counts as "does not fit"). The margin rule is in docs/arena.md.
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass

from .interpreter import arena_bound

ALIGN = 16
PROBE_TIMEOUT_S = 60.0
MAX_ARENA = 256 << 20  # a model needing more is not for a microcontroller

_OK, _FAIL, _ERROR = b"Y", b"N", b"E"


def _frame(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


class ProbeWorker:
    """A process that answers "does TFLM allocate MODEL in N bytes?" and may die trying."""

    def __init__(self):
        self._proc = None
        self._model = None

    def _start(self):
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(
                [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
                + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            ),
        )
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from yonoc.arena import _serve; _serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self._model = None

    def close(self):
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc.stdout.close()
            self._proc = None

    def _kill(self):
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for f in (self._proc.stdin, self._proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            self._proc = None

    def fits(self, model: bytes, size: int) -> bool | None:
        """True/False; None when TFLM rejects the model for a reason other than size."""
        if self._proc is None:
            self._start()
        try:
            if self._model is not model:
                self._proc.stdin.write(b"M" + _frame(model))
                self._model = model
            self._proc.stdin.write(b"P" + struct.pack("<Q", size))
            self._proc.stdin.flush()
            reply = self._read_reply()
        except OSError:  # includes BrokenPipeError: it died
            reply = b""
        if reply in (_OK, _FAIL, _ERROR):
            return {_OK: True, _FAIL: False, _ERROR: None}[reply]
        # the worker died (TFLM crashed on this size) or hung: "does not fit"; a fresh one next
        self._kill()
        return False

    def _read_reply(self) -> bytes:
        fd = self._proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], PROBE_TIMEOUT_S)
        if not ready:
            return b"T"
        return os.read(fd, 1)


_local = threading.local()


def _worker() -> ProbeWorker:
    w = getattr(_local, "worker", None)
    if w is None:
        w = _local.worker = ProbeWorker()
    return w


@atexit.register
def shutdown() -> None:
    w = getattr(_local, "worker", None)
    if w is not None:
        w.close()
        _local.worker = None


@dataclass(frozen=True)
class ArenaSize:
    minimum: int  # smallest arena (bytes) TFLM's Python interpreter allocated the model in
    margin: int  # added for 32-bit targets and kernel libraries (docs/arena.md)

    @property
    def size(self) -> int:
        """What yonoc emits: the minimum plus the margin, 16-byte rounded."""
        return _align(self.minimum + self.margin)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def smallest_arena(model: bytes, worker: ProbeWorker | None = None) -> int:
    """Smallest arena (bytes) in which allocation succeeds; 0 if TFLM cannot run the model.

    Assumes success is monotonic in the size (more room never makes allocation fail)."""
    worker = worker or _worker()
    hi = arena_bound(model)
    while True:
        ok = worker.fits(model, hi)
        if ok is None:
            return 0
        if ok:
            break
        if hi >= MAX_ARENA:
            return 0
        hi = min(hi * 2, MAX_ARENA)
    lo = 0  # does not fit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if worker.fits(model, mid):
            hi = mid
        else:
            lo = mid
    return hi


def measure(model: bytes, worker: ProbeWorker | None = None) -> ArenaSize:
    from .arena_margin import arena_margin

    minimum = smallest_arena(model, worker)
    return ArenaSize(minimum, arena_margin(model) if minimum else 0)


# --- the worker side ----------------------------------------------------------------------


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _serve() -> None:
    """Worker loop: "M"+len+model sets the model, "P"+size answers Y/N/E. TFLM's own output
    (allocation failures) goes to /dev/null; replies go out on the original stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and closes stdin
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    stdin = sys.stdin.buffer
    from .interpreter import _runtime

    rt = _runtime()
    model = None
    while True:
        try:
            kind = _read_exact(stdin, 1)
            if kind == b"M":
                (n,) = struct.unpack("<I", _read_exact(stdin, 4))
                model = _read_exact(stdin, n)
                continue
            (size,) = struct.unpack("<Q", _read_exact(stdin, 8))
        except EOFError:
            return
        try:
            interp = rt.Interpreter.from_bytes(model, arena_size=size)
            del interp
            out.write(_OK)
        except RuntimeError as e:
            out.write(_FAIL if "allocate tensors" in str(e) else _ERROR)
        except Exception:
            out.write(_ERROR)

"""Worker processes for the per-model passes that Ctrl-C stops at any moment.

Not concurrent.futures: its feeder thread can block for ever writing a large task to workers a
Ctrl-C has killed, and leaving its `with` block waits for the running tasks (up to a whole
model's fidelity search). Here each worker has one socket; a task goes only to an idle worker
(waiting in recv), the main process waits on the sockets with a timeout so a signal is handled
at once, and any exception, KeyboardInterrupt included, kills the workers.

Only the main process reacts to Ctrl-C (the terminal sends SIGINT to the whole process group).
A worker is started as `sh -c "trap '' INT; exec python ..."`: the shell ignores SIGINT before
Python starts, an ignored signal stays ignored across exec, and Python then installs no
KeyboardInterrupt handler, so no Ctrl-C can print a worker traceback, not even while it imports
(a Ctrl-C in the shell's first millisecond ends it silently; the main process got it too). The
main process never ignores SIGINT itself: a signal that arrives while workers start is not lost
(ignoring it there while other threads run lost it, 6 times in 20 tries).
Log records from workers travel on the same socket and are logged by the main process, so they
keep the `yonoc:` prefix and reach the terminal in one piece.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection, wait

from .errors import YonocError

log = logging.getLogger("yonoc")

POLL_S = 0.2
_CHILD = "from yonoc.workers import _worker_main; _worker_main()"


class WorkerDied(YonocError):
    exit_code = 1


def one_blas_thread(fn):
    """Run `fn` with the BLAS/OpenMP thread pools of numpy and scipy at one thread. OpenBLAS's
    threaded kernels round differently from its single-threaded ones, so images depended on the
    machine's core count (a three-model image differed in 96 weight bytes between one and two
    threads); and with one worker process per core (-j) every extra thread oversubscribes the
    cores (a two-model build: 8.5 s of CPU with two BLAS threads, 4.5 s with one)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import scipy.linalg  # noqa: F401  (scipy's own OpenBLAS: a limit covers loaded ones only)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


class _PipeHandler(logging.Handler):
    def __init__(self, conn):
        super().__init__()
        self.conn = conn

    def emit(self, record):
        try:
            self.conn.send(("log", record.levelno, record.getMessage()))
        except Exception:
            self.handleError(record)


def _worker_main():
    """Child side: argv = fd, "module:function", log level."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # already ignored (sh trap); stays so
    conn = Connection(int(sys.argv[1]))
    module, name = sys.argv[2].split(":")
    fn = getattr(importlib.import_module(module), name)
    logger = logging.getLogger("yonoc")
    logger.handlers[:] = [_PipeHandler(conn)]
    logger.propagate = False
    logger.setLevel(int(sys.argv[3]))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the main process is gone
            return
        if msg is None:
            return
        index, item = msg
        try:
            out = ("done", index, fn(item))
        except BaseException as e:  # noqa: B902 - handed to the main process, which re-raises
            try:
                pickle.dumps(e)
                err = e
            except Exception:
                err = RuntimeError(f"{type(e).__name__}: {e}")
            out = ("error", index, (err, traceback.format_exc()))
        try:
            conn.send(out)
        except (OSError, ValueError):
            return


def _start(fn) -> tuple:
    parent, child = socket.socketpair()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    )
    target = f"{fn.__module__}:{fn.__qualname__}"
    proc = subprocess.Popen(
        [
            "/bin/sh",
            "-c",
            "trap '' INT; exec \"$@\"",
            "yonoc-worker",
            sys.executable,
            "-c",
            _CHILD,
            str(child.fileno()),
            target,
            str(log.getEffectiveLevel()),
        ],
        pass_fds=(child.fileno(),),
        stdin=subprocess.DEVNULL,
        env=env,
    )
    child.close()
    return proc, Connection(parent.detach())


def run(fn, items: list, jobs: int, on_result, order=None) -> None:
    """fn(item) for every item in `jobs` worker processes; on_result(index, result) in the main
    process as each finishes. `fn`: a module-level function. `order`: indices in the order to
    hand them out."""
    queue = list(order if order is not None else range(len(items)))
    workers = []  # [process, connection, index being worked on or None]
    try:
        for _ in range(min(jobs, len(queue))):
            workers.append([*_start(fn), None])
        while queue or any(w[2] is not None for w in workers):
            for w in workers:
                if w[2] is None and queue:
                    w[2] = queue.pop(0)
                    w[1].send((w[2], items[w[2]]))
            busy = [w for w in workers if w[2] is not None]
            ready = set(wait([w[1] for w in busy], POLL_S))
            for w in busy:
                if w[1] in ready:
                    _receive(w, on_result)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: still clean up
        for w in workers:
            w[0].kill()
        for w in workers:
            try:
                w[0].wait(1.0)
            except subprocess.TimeoutExpired:
                pass
            w[1].close()
        raise
    for w in workers:
        try:
            w[1].send(None)
        except OSError:
            pass
    for w in workers:
        try:
            w[0].wait(5.0)
        except subprocess.TimeoutExpired:
            w[0].kill()
            w[0].wait()
        w[1].close()


def _receive(w, on_result) -> None:
    try:
        msg = w[1].recv()
    except (EOFError, OSError):
        code = w[0].wait()
        raise WorkerDied(
            f"a worker process died (exit code {code}) while compiling; out of memory? try -j 1"
        ) from None
    if msg[0] == "log":
        log.log(msg[1], "%s", msg[2])
    elif msg[0] == "done":
        w[2] = None
        on_result(msg[1], msg[2])
    else:
        err, tb = msg[2]
        if not isinstance(err, YonocError):
            log.debug("worker traceback:\n%s", tb.rstrip())
        raise err

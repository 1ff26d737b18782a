"""Worker processes for the per-model passes that Ctrl-C stops at any moment.

Not concurrent.futures: its feeder thread can block for ever writing a large task to workers a
Ctrl-C has killed, and leaving its `with` block waits for the running tasks (up to a whole
model's fidelity search). Here each worker has one pipe; a task goes only to an idle worker
(waiting in recv), the main process waits on the pipes with a timeout so a signal is handled
at once, and any exception, KeyboardInterrupt included, kills the workers.

Only the main process reacts to Ctrl-C (the terminal sends SIGINT to the whole process group):
workers start with SIGINT ignored (`_sigint_ignored_by_children`), so there is no window during
their start-up either. Their log records travel on the same pipe and are logged by the
main process, so they keep the `yonoc:` prefix and reach the terminal in one piece.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import signal
import threading
import traceback
from multiprocessing.connection import wait

from .errors import YonocError

log = logging.getLogger("yonoc")

POLL_S = 0.2


class WorkerDied(YonocError):
    exit_code = 1


class _PipeHandler(logging.Handler):
    def __init__(self, conn):
        super().__init__()
        self.conn = conn

    def emit(self, record):
        try:
            self.conn.send(("log", record.levelno, record.getMessage()))
        except Exception:
            self.handleError(record)


def _worker(conn, fn, level):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logger = logging.getLogger("yonoc")
    logger.handlers[:] = [_PipeHandler(conn)]
    logger.propagate = False
    logger.setLevel(level)
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


def run(fn, items: list, jobs: int, on_result, order=None) -> None:
    """fn(item) for every item in `jobs` spawned processes; on_result(index, result) in the main
    process as each finishes. `order`: indices in the order to hand them out."""
    ctx = multiprocessing.get_context("spawn")
    queue = list(order if order is not None else range(len(items)))
    workers = []  # [process, connection, index being worked on or None]
    try:
        with _sigint_ignored_by_children():
            for _ in range(min(jobs, len(queue))):
                parent, child = ctx.Pipe()
                p = ctx.Process(target=_worker, args=(child, fn, log.getEffectiveLevel()),
                                daemon=True)
                p.start()
                child.close()
                workers.append([p, parent, None])
        while queue or any(w[2] is not None for w in workers):
            for w in workers:
                if w[2] is None and queue:
                    w[2] = queue.pop(0)
                    w[1].send((w[2], items[w[2]]))
            busy = [w for w in workers if w[2] is not None]
            ready = set(wait([w[1] for w in busy] + [w[0].sentinel for w in busy], POLL_S))
            for w in busy:
                if w[1] in ready:
                    _receive(w, on_result)
                elif w[0].sentinel in ready and not w[1].poll():
                    raise WorkerDied(f"a worker process died (exit code {w[0].exitcode}) "
                                     "while compiling; out of memory? try -j 1")
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: still clean up
        for w in workers:
            w[0].kill()
        for w in workers:
            w[0].join(1.0)
            w[1].close()
        raise
    for w in workers:
        try:
            w[1].send(None)
        except OSError:
            pass
    for w in workers:
        w[0].join(5.0)
        if w[0].is_alive():
            w[0].kill()
        w[1].close()


@contextlib.contextmanager
def _sigint_ignored_by_children():
    """Children spawned inside start with SIGINT ignored: an ignored signal stays ignored
    across exec and Python then installs no KeyboardInterrupt handler, so a Ctrl-C while a
    worker imports cannot print a traceback. Meanwhile SIGINT is blocked in the main process
    (Linux keeps a blocked signal pending even while ignored): a Ctrl-C that comes during the
    spawn is raised when the block ends, not lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # the first spawn starts multiprocessing's resource tracker, which unblocks SIGINT after
    # starting it: a Ctrl-C after that, while still ignored here, would be lost
    from multiprocessing import resource_tracker
    resource_tracker.ensure_running()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, handler)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _receive(w, on_result) -> None:
    try:
        msg = w[1].recv()
    except EOFError:
        raise WorkerDied(f"a worker process died (exit code {w[0].exitcode}) while "
                         "compiling; out of memory? try -j 1") from None
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

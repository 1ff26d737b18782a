"""Ctrl-C at any moment of a build: exit 130 within seconds, one `yonoc: interrupted` line, no
worker traceback, no output or temporary file, no worker left running.

The test sends SIGINT itself, to a build in its own session with SIGINT restored to the default
(a shell that runs pytest in the background or CI ignores SIGINT, and children would inherit
that), so it runs everywhere. Moments: Python start-up, worker start-up (right after the
codebooks, in the window where a group-wide Ctrl-C used to hang the pool), mid-build; sent to
the whole process group (a terminal's Ctrl-C) and to the main process alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import example_models, small_models

pytestmark = pytest.mark.skipif(len(example_models()) < 3, reason="example models missing")

DEADLINE_S = 5.0  # the bar is ~2 s; slack for a loaded 2-core CI machine

# fewer models than example_models(): the moments below come sooner (codebooks are learnt from
# fewer weights); two models still start two workers
MODELS_2 = small_models()


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class Build:
    def __init__(self, tmp_path, *extra, models=None):
        self.out = tmp_path / "image.bin"
        self.dir = tmp_path
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "yonoc",
                "build",
                *(models or example_models()),
                "-o",
                str(self.out),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text, timeout=120.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(text in line for line in self.lines):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        raise AssertionError(f"no {text!r} line in {timeout} s: {self.lines}")

    def interrupt(self, group: bool):
        """SIGINT as a terminal sends it (group) or to the main process alone; returns the
        seconds until exit and the stderr lines that came after the signal."""
        seen = len(self.lines)
        t = time.monotonic()
        if group:
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"build still running 60 s after SIGINT: {self.lines}") from None
        elapsed = time.monotonic() - t
        self._reader.join(5)
        return elapsed, self.lines[seen:]

    def assert_clean_interrupt(self, elapsed, after):
        assert self.proc.returncode == 130, (self.proc.returncode, self.lines)
        assert elapsed < DEADLINE_S, f"took {elapsed:.1f} s"
        assert after and after[-1] == "yonoc: interrupted", self.lines
        # lines already in flight when the signal came may follow it, but nothing else
        assert sum("interrupted" in line for line in self.lines) == 1, self.lines
        text = "\n".join(self.lines)
        assert "Traceback" not in text and "error" not in text.lower(), text
        assert all(line.startswith("yonoc: ") for line in self.lines), self.lines
        assert not self.out.exists()
        assert not [f for f in os.listdir(self.dir) if f.startswith(".yonoc-")]
        end = time.monotonic() + 5.0  # no worker left in the group (zombies reaped by init)
        while time.monotonic() < end:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("processes of the build still exist 5 s after it exited")


# the workers' moment matters when they get the signal too (group); sent to the main process
# alone, the workers are stopped by it whatever their moment, so one delay covers that path
@pytest.mark.parametrize(
    "group, delay",
    [(True, 0.0), (True, 0.4), (True, 1.2), (False, 0.4)],
    ids=["group-0.0", "group-0.4", "group-1.2", "main-only-0.4"],
)
def test_ctrl_c_while_workers_start(tmp_path, group, delay):
    b = Build(tmp_path, "-j", "2", "-v", models=MODELS_2)
    b.wait_for("codebooks:")  # logged just before the workers are spawned
    time.sleep(delay)
    b.assert_clean_interrupt(*b.interrupt(group))


# with -j 1 there are no workers: a signal to the main process alone is the group case minus
# the arena probe worker, which ignores SIGINT either way
@pytest.mark.parametrize(
    "jobs, group",
    [("1", True), ("2", True), ("2", False)],
    ids=["1-group", "2-group", "2-main-only"],
)
def test_ctrl_c_mid_build(tmp_path, jobs, group):
    b = Build(tmp_path, "-j", jobs, "-v", models=MODELS_2)
    b.wait_for("learning codebooks")
    b.wait_for("sensitivity probe 2/")  # a model is in its fidelity search (TFLM runs)
    b.assert_clean_interrupt(*b.interrupt(group))


@pytest.mark.parametrize("delay", [0.3, 3.0])
def test_ctrl_c_quiet_build_prints_exactly_one_line(tmp_path, delay):
    """-q: nothing but the one line (start-up imports at 0.3 s, codebooks at 3 s)."""
    b = Build(tmp_path, "-q")
    time.sleep(delay)
    elapsed, _ = b.interrupt(group=True)
    assert b.proc.returncode == 130, b.lines
    assert b.lines == ["yonoc: interrupted"]
    assert elapsed < DEADLINE_S
    assert not b.out.exists()

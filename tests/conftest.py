"""Shared fixtures: example models (always present) and ../shared/models (skipped if absent)."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pathlib
import shutil
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "models")
SHARED = os.environ.get(
    "YONOC_SHARED_MODELS", os.path.join(os.path.dirname(ROOT), "shared", "models")
)


# the fast tests build the first four examples (a fixed subset: the suite stays within its time
# budget as examples are added); the others are covered by bench/paper_tables.py --protocol
# digits_mobilenet has kws_dscnn's kernels (1x1, 3x3, depthwise 3x3, FC) at a third of its
# fidelity-search time; kws_dscnn comes in where its own traits are tested (tests/test_flash.py)
FAST_EXAMPLES = ("digits_mlp", "digits_mobilenet", "digits_resnet", "imu_cnn1d")


# build options for tests of a build's plumbing (files, modes, SRAM, errors) rather than of its
# compression: no TFLM fidelity check, weight-space codes (no calibration pass)
QUICK = ("--no-check", "--encode", "nearest")

# two of them for tests of a build's plumbing rather than its compression: quick to build, two
# kernel groups, the larger model region and the larger arena in different tasks
SMALL_EXAMPLES = ("digits_mlp", "imu_cnn1d")


def small_models() -> list:
    return [os.path.join(EXAMPLES, f"{n}.tflite") for n in SMALL_EXAMPLES]


# the files that take longest, started first: under pytest-xdist (--dist loadfile) a file runs
# on one worker, and one that starts last keeps the run going after the other worker is done
LONGEST_FIRST = ("test_shared_models.py",)


def pytest_collection_modifyitems(items):
    first = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: first.get(item.path.name, len(first)))  # stable: else as found


def example_models() -> list:
    return [
        p
        for p in sorted(glob.glob(os.path.join(EXAMPLES, "*.tflite")))
        if os.path.splitext(os.path.basename(p))[0] in FAST_EXAMPLES
    ]


def shared_models() -> list:
    return sorted(glob.glob(os.path.join(SHARED, "*", "*.tflite")))


def run_yonoc(*args, check=True, env=None):
    """Run the CLI in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "yonoc.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"yonoc {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}"
        )
    return proc


@contextlib.contextmanager
def yonoc_logger_kept():
    """The CLI points yonoc's logger at stderr (propagate off), which later tests' caplog would
    not see: put it back as it was."""
    log = logging.getLogger("yonoc")
    saved = (log.handlers[:], log.propagate, log.level)
    try:
        yield
    finally:
        log.handlers[:], log.propagate, log.level = saved


@pytest.fixture(autouse=True)
def _yonoc_logger_restored():
    """Every test starts with the yonoc logger as the test session had it, whatever an in-process
    CLI run (CliRunner) in an earlier test of the same worker did to it."""
    with yonoc_logger_kept():
        yield


def yonoc_in_process(*args, check=True) -> subprocess.CompletedProcess:
    """Run the CLI in this process (click's CliRunner): the same exit code, stdout and stderr as
    `run_yonoc`, without a Python start-up and yonoc's imports per call. For what does not need a
    real process (signals, `python -m`, a terminal, worker processes' environment)."""
    from click.testing import CliRunner

    from yonoc.cli import main

    argv = list(map(str, args))
    with yonoc_logger_kept():
        r = CliRunner().invoke(main, argv, prog_name="yonoc")
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception  # a traceback: the test fails and shows it
    if check and r.exit_code != 0:
        raise AssertionError(f"yonoc {' '.join(argv)} failed ({r.exit_code}):\n{r.stderr}")
    return subprocess.CompletedProcess(argv, r.exit_code, r.stdout, r.stderr)


def tflm_outputs(model: bytes, inputs: list) -> list:
    from yonoc import interpreter

    return [o[0] for o in interpreter.run(model, inputs)]


def shared_real_samples(tmp_path) -> dict:
    """Real inputs that ship with ../shared/models, as .npy files per model name."""
    out = {}
    d = SHARED
    tm = os.path.join(d, "tflite-micro")
    if os.path.isdir(tm):
        feats = [
            np.load(os.path.join(tm, f"{w}_1000ms.features.npy")).reshape(1, 1960)
            for w in ("yes", "no", "silence", "noise")
        ]
        p = tmp_path / "micro_speech.npy"
        np.save(p, np.concatenate(feats).astype(np.int8))
        out["micro_speech_quantized"] = str(p)
        imgs = []
        for name in ("person.bmp", "no_person.bmp"):
            raw = open(os.path.join(tm, name), "rb").read()
            off = int.from_bytes(raw[10:14], "little")
            px = np.frombuffer(raw, np.uint8, 96 * 96, off).reshape(96, 96)[::-1]
            imgs.append(px.view(np.int8).reshape(1, 96, 96, 1))
        p = tmp_path / "person_detect.npy"
        np.save(p, np.concatenate(imgs))
        out["person_detect"] = str(p)
    gs = os.path.join(d, "nuvoton-gsensor", "gsensor_test_x.npy")
    if os.path.isfile(gs):
        x = np.load(gs).astype(np.float32)[:, :, :, None]
        p = tmp_path / "gsensor.npy"
        np.save(p, x)
        out["gsensor_cnn_int8"] = str(p)
    ad = os.path.join(d, "mlcommons-tiny", "ad01_toycar_normal_id01_windows.npy")
    if os.path.isfile(ad):
        out["ad01_int8"] = ad  # float32 windows: yonoc quantises them with the input scale
    return out


needs_shared = pytest.mark.skipif(not shared_models(), reason="../shared/models not present")


@dataclass(frozen=True)
class Built:
    """An image built by the CLI, with its --report and its `yonoc extract` output."""

    dir: pathlib.Path
    image: pathlib.Path
    report: pathlib.Path
    rebuilt: pathlib.Path  # <task name>.tflite per model


def _session_dir(tmp_path_factory, name: str, make) -> pathlib.Path:
    """A folder made once per test session by `make(folder)`. Under pytest-xdist (-n) every
    worker is a session of its own: the first worker to get here makes it in the run's shared
    temporary root, under a lock, and the others wait for it and use it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        d = tmp_path_factory.mktemp(name)
        make(d)
        return d
    import fcntl

    root = tmp_path_factory.getbasetemp().parent  # one per run, shared by its workers
    d = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (d / ".done").exists():
            if d.exists():
                shutil.rmtree(d)  # a worker failed half-way: start over
            d.mkdir()
            make(d)
            (d / ".done").touch()
    return d


@pytest.fixture(scope="session")
def int8_built(tmp_path_factory) -> pathlib.Path:
    """The fast examples and every ../shared model in one int8-mode image (--no-check: lossless,
    arenas measured), with its C sources (--emit-c, prefix `all`): for the tests of arena sizes
    and of the generated op resolver. Folder: image.bin, all_image.h/.cc, all_ops.h."""

    def make(d):
        yonoc_in_process(
            "build", *example_models(), *shared_models(), "-o", d / "image.bin",
            "--mode", "int8", "--no-check", "-j", "1", "--emit-c", d, "--prefix", "all",
        )  # fmt: skip

    return _session_dir(tmp_path_factory, "int8_all", make)


@pytest.fixture(scope="session")
def small_built(tmp_path_factory) -> pathlib.Path:
    """The two small examples, --no-check, weight-space codes (--encode nearest: no calibration
    pass; what is tested with it is not how codes are chosen), rebuild mode (the default without
    --sram), with C
    sources (prefix `app`: the default prefix's yono_image[] collides with the runtime's
    yono_image type): image.bin, app_image.h/.cc, app_ops.h."""

    def make(d):
        yonoc_in_process(
            "build", *small_models(), "-o", d / "image.bin", *QUICK,
            "-j", "1", "--emit-c", d, "--prefix", "app",
        )  # fmt: skip

    return _session_dir(tmp_path_factory, "small_no_check", make)


@pytest.fixture(scope="session")
def examples_built(tmp_path_factory) -> Built:
    """The example models built once per session with the default options (TFLM fidelity
    check): for every test that reads this image rather than tests a build of its own.
    Tests must not write into its folder."""
    if len(example_models()) < 3:
        pytest.skip("example models missing")

    def make(d):
        run_yonoc("build", *example_models(), "-o", d / "image.bin", "--report", d / "report.json")
        run_yonoc("extract", d / "image.bin", "-o", d / "rebuilt")

    d = _session_dir(tmp_path_factory, "examples_default", make)
    return Built(d, d / "image.bin", d / "report.json", d / "rebuilt")

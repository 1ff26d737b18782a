"""Mutation fuzzing of everything that reads untrusted bytes: the image reader (and the
inspect/extract paths on top of it) and the TFLite frontend.

Every mutated input must either be accepted (and then rebuild consistently) or be refused with
the module's own error type; anything else (IndexError, struct.error, a hang) is a bug. The CI
run does >= 10,000 image mutations; YONOC_FUZZ_EXAMPLES raises the count for longer runs.
Mutations come from a seeded generator (the same ones every run); a failure names the
mutation, which `_mutate` replays. (Hypothesis spent ~3 ms per example on its own bookkeeping,
10x the reader's work.)
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from yonoc.backend import format_spec as spec
from yonoc.backend import image_format as fmt
from yonoc.errors import ImageError, ModelError
from yonoc.frontend import read_model_bytes
from yonoc.report import inspect_image

from conftest import QUICK, example_models, yonoc_in_process

N = int(os.environ.get("YONOC_FUZZ_EXAMPLES", "10000"))


@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    models = example_models()
    if not models:
        pytest.skip("example models missing")
    d = tmp_path_factory.mktemp("fuzz")
    yonoc_in_process(
        "build",
        min(models, key=os.path.getsize),
        "-o",
        d / "img.bin",
        *QUICK,
        "-j",
        "1",
    )
    return (d / "img.bin").read_bytes()


def _fix_crc(buf: bytearray) -> bytes:
    if len(buf) >= spec.CRC_START:
        crc = fmt.crc32(bytes(buf[spec.CRC_START :]))
        struct.pack_into("<I", buf, spec.HEADER.offset("crc32"), crc)
    return bytes(buf)


def _mutate(data: bytes, ops, fix_crc: bool) -> bytes:
    buf = bytearray(data)
    for kind, pos, val in ops:
        if not buf:
            break
        p = pos % len(buf)
        if kind == 0:
            buf[p] ^= 1 << (val % 8)
        elif kind == 1:
            buf[p] = val & 0xFF
        elif kind == 2:  # a lying 32-bit field somewhere in the tables
            p = (pos % 512) & ~3
            if p + 4 <= len(buf):
                struct.pack_into("<I", buf, p, val)
        elif kind == 3:
            del buf[p:]
        else:
            buf[p:p] = bytes([val & 0xFF]) * (val % 7 + 1)
    return _fix_crc(buf) if fix_crc else bytes(buf)


def _mutations(count: int, seed: int):
    """`count` seeded mutations: 1-4 (kind, position, value) ops each."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(1, 5))
        kinds = rng.integers(0, 5, n)
        pos = rng.integers(0, 1 << 31, n)
        vals = rng.integers(0, 1 << 31, n)
        yield [(int(k), int(p), int(v)) for k, p, v in zip(kinds, pos, vals)]


def _check_image(data: bytes):
    try:
        img = fmt.read_image(data)
    except ImageError:
        return False
    for i in range(len(img.tasks)):
        try:
            fmt.rebuild(img, i)
        except ImageError:  # CRC of the rebuilt model catches consistent lies
            return False
    inspect_image(img)
    return True


def test_mutated_images_are_accepted_or_cleanly_refused(small_image):
    accepted = 0
    for k, ops in enumerate(_mutations(N, seed=1)):
        fix_crc = bool(k % 2)
        try:
            accepted += _check_image(_mutate(small_image, ops, fix_crc))
        except Exception as e:
            raise AssertionError(f"mutation {ops} (fix_crc={fix_crc}): {e!r}") from e
    # the CRC-fixed half reaches the tables: some mutations must be accepted, most refused
    assert 0 < accepted < N


def test_mutated_images_through_the_cli(small_image, tmp_path):
    """The CLI face of the same property: one line, documented code, no output left (in-process:
    the exit path of a real process is tests/test_validation.py's)."""
    rng = np.random.default_rng(0)
    codes = set()
    for k in range(20):
        ops = [
            (int(rng.integers(0, 5)), int(rng.integers(0, 1 << 31)), int(rng.integers(0, 1 << 31)))
            for _ in range(2)
        ]
        bad = tmp_path / f"bad{k}.bin"
        bad.write_bytes(_mutate(small_image, ops, bool(k % 2)))
        out = tmp_path / f"out{k}"
        for args in (("inspect", bad), ("extract", bad, "-o", out)):
            p = yonoc_in_process(*args, check=False)
            codes.add(p.returncode)
            assert p.returncode in (0, 4), p.stderr
            if p.returncode:
                assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
                assert not out.exists()
    assert 4 in codes


@pytest.fixture(scope="module")
def small_model():
    models = example_models()
    if not models:
        pytest.skip("example models missing")
    with open(min(models, key=os.path.getsize), "rb") as f:
        return f.read()


def test_mutated_tflite_files_are_read_or_cleanly_refused(small_model):
    read = 0
    for ops in _mutations(max(N // 5, 200), seed=2):
        data = _mutate(small_model, ops, False)
        try:
            read_model_bytes(data, "fuzz")
            read += 1
        except ModelError:
            pass
        except Exception as e:
            raise AssertionError(f"mutation {ops}: {e!r}") from e
    assert read > 0  # not every mutation may be refused: some only touch weight bytes


def _regressions_module():
    import importlib.util

    path = Path(__file__).parent / "fuzz" / "make_regressions.py"
    spec = importlib.util.spec_from_file_location("make_regressions", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_fuzz_regressions_match_their_generator():
    """A format change must regenerate them, or the C++ replay would only test the version check."""
    mod = _regressions_module()
    for name, make in mod.REGRESSIONS.items():
        committed = (Path(__file__).parent / "fuzz" / "regressions" / name).read_bytes()
        assert committed == make(), f"stale {name}: run python tests/fuzz/make_regressions.py"


def test_name_with_nul_regression_fails_at_the_name_check():
    data = _regressions_module()._name_with_nul()
    with pytest.raises(ImageError, match="name is not a NUL-terminated string"):
        fmt.read_image(data)
    fixed = bytearray(data)
    fixed[fixed.index(b"ab\0cd") + 2] = ord("_")
    img = fmt.read_image(_fix_crc(fixed))
    assert img.tasks[0].name == "ab_cd" and len(fmt.rebuild(img, 0)) == img.tasks[0].model_size

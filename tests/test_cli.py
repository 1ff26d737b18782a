"""End to end on the project's own example models, through the CLI as a user runs it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from yonoc.backend import image_format as fmt
from yonoc.frontend import read_model
from yonoc.interpreter import generated_inputs
from yonoc.passes.fidelity import snr_db

from conftest import (
    EXAMPLES,
    QUICK,
    example_models,
    run_yonoc,
    small_models,
    tflm_outputs,
    yonoc_in_process,
)

pytestmark = pytest.mark.skipif(len(example_models()) < 3, reason="example models missing")


@pytest.fixture(scope="module")
def built(examples_built):
    return examples_built.dir, examples_built.image


def _samples(name):
    shape = read_model(os.path.join(EXAMPLES, f"{name}.tflite")).inputs[0].shape
    x = np.load(os.path.join(EXAMPLES, f"{name}.sample.npy"))
    return list(x.reshape((-1,) + tuple(shape)))


def test_build_inspect_extract_round_trip(built):
    d, image = built
    r = json.loads(run_yonoc("inspect", image, "--json").stdout)
    names = sorted(os.path.splitext(os.path.basename(p))[0] for p in example_models())
    assert [m["name"] for m in r["models"]] == names
    for key in ("image_bytes", "original_bytes", "original_weight_bytes", "image_weight_bytes"):
        assert r[key] > 0
    assert r["image_bytes"] == os.path.getsize(image)
    assert r["original_bytes"] == sum(os.path.getsize(p) for p in example_models())
    assert r["image_bytes"] < r["original_bytes"]
    for m in r["models"]:
        rebuilt = d / "rebuilt" / f"{m['name']}.tflite"
        assert rebuilt.stat().st_size == m["rebuilt_bytes"]
    text = run_yonoc("inspect", image).stdout
    assert "vs the int8 files" in text and names[0] in text


def test_rebuilt_models_meet_the_fidelity_target_in_tflm(built):
    d, _ = built
    for path in example_models():
        name = os.path.splitext(os.path.basename(path))[0]
        orig = read_model(path)
        real = _samples(name)
        xs = real + generated_inputs(orig, 32)  # exactly what the build checked
        a = tflm_outputs(orig.data, xs)
        b = tflm_outputs((d / "rebuilt" / f"{name}.tflite").read_bytes(), xs)
        info = orig.outputs[0]
        deq = [(o.astype(float) - info.zero_point) * info.scale for o in a]
        err = [(o.astype(float) - info.zero_point) * info.scale for o in b]
        signal = sum(float(np.sum(y * y)) for y in deq)
        noise = sum(float(np.sum((y - z) ** 2)) for y, z in zip(deq, err))
        assert snr_db(signal, noise) >= 20.0, name
        agree = np.mean([np.argmax(x) == np.argmax(y) for x, y in zip(a[: len(real)], b)])
        assert agree >= 0.99, name


def test_rebuilt_models_run_in_litert(built):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    d, _ = built
    for path in example_models():
        name = os.path.splitext(os.path.basename(path))[0]
        it = litert.Interpreter(model_path=str(d / "rebuilt" / f"{name}.tflite"))
        it.allocate_tensors()
        x = _samples(name)[0]
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        out = it.get_tensor(it.get_output_details()[0]["index"])
        ref = tflm_outputs((d / "rebuilt" / f"{name}.tflite").read_bytes(), [x])[0]
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 2


def test_same_image_whatever_the_input_order_hash_seed_worker_and_thread_count(built, tmp_path):
    """One build that differs from the session image in all four: input order reversed, one
    worker (the session image: one per core, 2 here), a fixed hash seed (there: random), three
    OpenBLAS threads (there: one per core; threaded BLAS rounds differently, so yonoc runs its
    numerics on one thread: workers.one_blas_thread)."""
    _, image = built
    again = tmp_path / "again.bin"
    env = dict(os.environ, PYTHONHASHSEED="12345", OPENBLAS_NUM_THREADS="3")
    run_yonoc("build", *reversed(example_models()), "-o", again, "--jobs", "1", env=env)
    assert again.read_bytes() == image.read_bytes()


def test_budget_check_refuses_what_does_not_fit(tmp_path):
    # flash: tests/test_validation.py (too small a --flash: exit 7, "does not fit", no output)
    out = tmp_path / "x.bin"
    p = run_yonoc(
        "build", *example_models(), "-o", out, "--target", "stm32h747", "--sram", "1K", check=False
    )
    assert p.returncode == 7 and "SRAM" in p.stderr
    assert not out.exists()


def test_modes_order_by_size(built, tmp_path):
    sizes = {"yono": built[1].stat().st_size}  # the default mode
    for mode in ("int8", "pq-m"):
        out = tmp_path / f"{mode}.bin"
        yonoc_in_process(
            "build",
            *example_models(),
            "-o",
            out,
            "--mode",
            mode,
            *QUICK,
            "-j",
            "1",
        )
        sizes[mode] = out.stat().st_size
    assert sizes["pq-m"] < sizes["yono"] < sizes["int8"]
    # int8 mode rebuilds the inputs byte for byte
    img = fmt.read_image((tmp_path / "int8.bin").read_bytes())
    by_name = {os.path.splitext(os.path.basename(p))[0]: p for p in example_models()}
    for i, t in enumerate(img.tasks):
        assert fmt.rebuild(img, i) == open(by_name[t.name], "rb").read()


def test_frozen_codebooks_compress_an_unseen_model(tmp_path):
    models = example_models()
    seen, unseen = models[:-1], models[-1:]
    cb = tmp_path / "cb.npz"
    yonoc_in_process("codebooks", "learn", *seen, "-o", cb)
    before = cb.read_bytes()
    out = tmp_path / "unseen.bin"
    # fidelity is not what is tested here: --no-check
    p = yonoc_in_process(
        "build",
        "--codebooks",
        cb,
        *unseen,
        "-o",
        out,
        *QUICK,
        "-j",
        "1",
    )
    assert cb.read_bytes() == before
    assert "its rates are used" not in p.stderr  # learned at the build's (default) rates
    r = json.loads(run_yonoc("inspect", out, "--json").stdout)
    assert r["models"][0]["tensors_compressed"] > 0
    # rates asked for that the frozen codebooks do not have: said, and the codebooks' are used
    p = yonoc_in_process(
        "build", "--codebooks", cb, *unseen, "-o", out, *QUICK, "--subvector-lengths", "A=8,4,2"
    )
    assert "its rates are used (subvector lengths A=4,2 B=4,2)" in p.stderr
    assert "not the build's (A=8,4,2 B=4,2)" in p.stderr


@pytest.mark.parametrize(
    "args, code, text",
    [
        (["build", "-o", "{tmp}/x.bin"], 2, "no input models"),
        (["build", "{tmp}/missing.tflite", "-o", "{tmp}/x.bin"], 3, "cannot read"),
        (["build", "{tmp}/garbage.tflite", "-o", "{tmp}/x.bin"], 3, "not a TFLite model"),
        (["build", "{tmp}/trunc.tflite", "-o", "{tmp}/x.bin"], 3, "truncated or corrupt"),
        (["inspect", "{tmp}/garbage.tflite"], 4, "not a yonoc image"),
        (["extract", "{tmp}/garbage.tflite", "-o", "{tmp}/out"], 4, "not a yonoc image"),
        (["build", "{ex}", "{ex}", "-o", "{tmp}/x.bin"], 2, "duplicate model name"),
        (
            ["build", "{ex}", "-o", "{tmp}/x.bin", "--codebooks", "{tmp}/garbage.tflite"],
            2,
            "not a yonoc codebook file",
        ),
    ],
)
def test_bad_input_is_one_line_error_without_output(tmp_path, args, code, text):
    (tmp_path / "garbage.tflite").write_bytes(b"hello world, not a model" * 10)
    data = open(example_models()[0], "rb").read()
    (tmp_path / "trunc.tflite").write_bytes(data[: len(data) // 3])
    argv = [a.format(tmp=tmp_path, ex=example_models()[0]) for a in args]
    p = yonoc_in_process(*argv, check=False)
    assert p.returncode == code, p.stderr
    assert text in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert not (tmp_path / "x.bin").exists() and not (tmp_path / "out").exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".yonoc-")]


def test_per_model_lines_arrive_while_the_build_runs(tmp_path):
    """Default verbosity, stderr not a terminal: plain lines, each model's as it finishes."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "yonoc",
            "build",
            *small_models(),
            "-o",
            str(tmp_path / "x.bin"),
            "-j",
            "1",
            "--encode",
            "nearest",  # the lines are tested, not the codes: no calibration pass
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if first is None and "TFLM runs" in line:
            first = proc.poll()  # the other model is still being compiled
    assert proc.wait() == 0
    assert first is None, lines
    assert lines[0].startswith("yonoc: learning codebooks")
    done = [ln for ln in lines if "TFLM runs" in ln]
    assert len(done) == 2 and all(ln.startswith("yonoc: ") for ln in lines)
    assert "{" not in "".join(done)  # readable text, not Python dicts


def test_progress_bar_on_a_terminal(tmp_path):
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "yonoc",
            "build",
            *small_models(),
            "-o",
            str(tmp_path / "x.bin"),
            "--mode",
            "int8",
        ],
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait() == 0
    text = out.decode()
    assert "compressing" in text and "100%" in text  # click's bar
    assert text.count("TFLM runs") == 2  # the per-model lines, printed above the bar
    assert "\x1b[?25h" in text  # the cursor the bar hid is shown again

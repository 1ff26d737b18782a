"""Arena sizes yonoc emits work in TFLM and are tight; one SRAM figure everywhere (issue 10).

Allocation is checked in the `tflite_micro` interpreter, every probe in a forked child (a
too-small arena can crash TFLM). The shared models are used when ../shared/models exists.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from yonoc import arena, budget
from yonoc.arena_margin import arena_margin
from yonoc.backend import image_format as fmt

from conftest import QUICK, example_models, run_yonoc, shared_models, small_models, yonoc_in_process

pytest.importorskip("tflite_micro")

MODELS = example_models() + shared_models()
GXX = shutil.which("g++")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Independent of yonoc/arena.py: one process, one forked child per probe; exit 0 = allocated.
_PROBE = r"""
import json, os, sys
import tflite_micro
out, devnull = [], os.open(os.devnull, os.O_WRONLY)
for path, size in json.load(sys.stdin):
    model = open(path, "rb").read()
    pid = os.fork()
    if pid == 0:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            tflite_micro.runtime.Interpreter.from_bytes(model, arena_size=size)
        except Exception:
            os._exit(3)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    out.append(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)
print(json.dumps(out))
"""


def allocates(jobs: list) -> list:
    """[(model path, arena bytes)] -> [did TFLM's AllocateTensors succeed]."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        input=json.dumps([(str(p), int(n)) for p, n in jobs]),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


@pytest.fixture(scope="module")
def one_task(int8_built, tmp_path_factory):
    """Per model, from the session's int8 image of every model (no fidelity check: arena
    measurement only): its rebuilt model on disk, the arena it records, the margin and the
    measured minimum."""
    tmp = tmp_path_factory.mktemp("arena")
    img = fmt.read_image((int8_built / "image.bin").read_bytes())
    assert img.max_arena_size == max(t.arena_size for t in img.tasks)
    out = {}
    for i, task in enumerate(img.tasks):
        rebuilt = fmt.rebuild(img, i)
        model_path = tmp / f"{task.name}.tflite"
        model_path.write_bytes(rebuilt)
        out[task.name] = dict(
            path=model_path,
            arena=task.arena_size,
            margin=arena_margin(rebuilt),
            minimum=arena.smallest_arena(rebuilt),
        )
    arena.shutdown()
    return out


@pytest.fixture(scope="module")
def probes(one_task):
    """Sizes probed per model: emitted, emitted - margin, 16 below that, the minimum, minimum-1."""
    jobs, keys = [], []
    for name, t in one_task.items():
        for label, size in (
            ("emitted", t["arena"]),
            ("no_margin", t["arena"] - t["margin"]),
            ("below", t["arena"] - t["margin"] - 16),
            ("minimum", t["minimum"]),
            ("minimum-1", t["minimum"] - 1),
        ):
            jobs.append((t["path"], size))
            keys.append((name, label))
    return dict(zip(keys, allocates(jobs)))


@pytest.mark.parametrize("name", [_stem(p) for p in MODELS])
def test_emitted_arena_allocates_and_minimum_is_tight(name, one_task, probes):
    t = one_task[name]
    assert t["minimum"] > 0, f"{name}: TFLM's interpreter could not allocate it at all"
    # what the image records: the minimum plus the margin, 16-byte rounded
    assert t["arena"] == (t["minimum"] + t["margin"] + 15) // 16 * 16
    assert t["margin"] >= 0 and t["margin"] % 16 == 0
    assert probes[(name, "emitted")], f"{name}: the emitted arena {t['arena']} B fails"
    assert probes[(name, "no_margin")], f"{name}: emitted minus margin fails"
    assert not probes[(name, "below")], f"{name}: 16 B below (emitted - margin) still allocates"
    assert probes[(name, "minimum")] and not probes[(name, "minimum-1")], (
        f"{name}: {t['minimum']} B is not the smallest arena that allocates"
    )


def test_arena_measured_without_check_and_deterministic(tmp_path):
    """--no-check no longer leaves the arena 0; the same inputs give the same bytes."""
    m = example_models()[0]
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    yonoc_in_process("build", m, "-o", a, "--no-check", "--mode", "int8", "-j", "1")
    run_yonoc("build", m, "-o", b, "--no-check", "--mode", "int8")  # another process
    assert a.read_bytes() == b.read_bytes()
    assert fmt.read_image(a.read_bytes()).tasks[0].arena_size > 0


def test_probe_worker_survives_tflm_crashes():
    """A probe that kills its worker (as TFLM can on a too-small arena) reads as 'does not fit'
    and the next probe gets a fresh worker."""
    model = open(example_models()[0], "rb").read()
    w = arena.ProbeWorker()
    try:
        assert w.fits(model, 1 << 20) is True
        os.kill(w._proc.pid, 9)  # a crash, as far as the parent can tell
        assert w.fits(model, 1 << 20) is False
        assert w.fits(model, 1 << 20) is True
        assert w.fits(model, 64) is False
        assert w.fits(b"TFL3 not a model" * 4, 1 << 20) is not True
    finally:
        w.close()


def test_margin_covers_cmsis_nn_conv_scratch():
    """The margin is at least CMSIS-NN's DSP im2col buffer of the widest conv (2 x col int16)."""
    import tflite

    path = next((p for p in MODELS if _stem(p) == "digits_resnet"), None)
    if path is None:
        pytest.skip("digits_resnet example missing")
    data = open(path, "rb").read()
    m = tflite.Model.GetRootAsModel(data, 0)
    sg = m.Subgraphs(0)
    col = 0
    for o in range(sg.OperatorsLength()):
        op = sg.Operators(o)
        if m.OperatorCodes(op.OpcodeIndex()).BuiltinCode() == tflite.BuiltinOperator.CONV_2D:
            f = sg.Tensors(op.Inputs(1)).ShapeAsNumpy()
            col = max(col, int(f[1] * f[2] * f[3]))
    assert col > 0
    assert arena_margin(data) >= 2 * col * 2


# ------------------------------------------------------------------ one SRAM figure


@pytest.fixture(scope="module")
def examples_image(small_built):
    return small_built, small_built / "image.bin"


def _macros(header: str) -> dict:
    out = {}
    for line in header.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "#define" and parts[2].endswith("u"):
            out[parts[1]] = int(parts[2][:-1], 0)
    return out


def test_sram_figure_is_one_figure(examples_image):
    tmp, image = examples_image
    img = fmt.read_image(image.read_bytes())
    need = budget.firmware_sram(img)
    r = json.loads(run_yonoc("inspect", image, "--json").stdout)["sram"]
    h = _macros((tmp / "app_image.h").read_text())
    assert r["total_bytes"] == need.total == h["APP_SRAM_SIZE"]
    assert r["model_region_bytes"] == (h["APP_MODEL_REGION_SIZE"] + 15) // 16 * 16
    assert r["arena_bytes"] == h["APP_TENSOR_ARENA_SIZE"] == img.max_arena_size
    assert r["codeword_cache_bytes"] == h["APP_CODEWORD_CACHE_SIZE"] > 0
    assert r["total_bytes"] == (
        r["model_region_bytes"] + r["arena_bytes"] + r["codeword_cache_bytes"]
    )
    # the firmware's region and arena are each the largest over tasks, not one task's sum
    assert need.total > max(t.model_size + t.arena_size for t in img.tasks)
    text = run_yonoc("inspect", image).stdout
    assert f"firmware SRAM: {need.total} bytes" in text


def test_sram_budget_is_exactly_the_figure(examples_image, tmp_path):
    _, image = examples_image
    total = budget.firmware_sram(fmt.read_image(image.read_bytes())).total
    out = tmp_path / "x.bin"
    # rebuild mode for every task: with the default `--execute auto` a budget below the
    # rebuild figure moves tasks to flash mode instead (tests/test_flash_image.py)
    rebuild = ("--execute", "rebuild")
    base = (
        "build",
        *small_models(),
        "-o",
        out,
        *QUICK,
        "-j",
        "1",
        *rebuild,
    )
    p = yonoc_in_process(*base, "--sram", str(total - 1), check=False)
    assert p.returncode == 7, p.stderr
    assert "model region" in p.stderr and "tensor arena" in p.stderr
    assert "codeword cache" in p.stderr and "largest model" in p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("yonoc: error:")]
    assert len(errors) == 1 and "Traceback" not in p.stderr and not out.exists()
    yonoc_in_process(*base, "--sram", str(total))
    assert out.read_bytes() == image.read_bytes()


def test_impossible_sram_fails_before_the_build(tmp_path):
    out = tmp_path / "x.bin"
    p = yonoc_in_process(
        "build", *example_models(), "-o", out, "--sram", "64K", "--execute", "rebuild", check=False
    )
    assert p.returncode == 7 and "at least" in p.stderr and "digits_resnet" in p.stderr
    assert "learning codebooks" not in p.stderr and not out.exists()


def test_sram_check_without_tflite_micro_says_so(tmp_path):
    fake = tmp_path / "site" / "tflite_micro"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), REPO]))
    m = example_models()[0]
    out = tmp_path / "x.bin"
    p = run_yonoc(
        "build",
        m,
        "-o",
        out,
        *QUICK,
        "--sram",
        "1M",
        check=False,
        env=env,
    )
    assert p.returncode == 6 and "cannot check SRAM" in p.stderr and not out.exists()
    run_yonoc("build", m, "-o", out, *QUICK, "--emit-c", tmp_path, env=env)
    assert fmt.read_image(out.read_bytes()).tasks[0].arena_size == 0
    assert "#define APP_TENSOR_ARENA_MEASURED 0" in (tmp_path / "app_image.h").read_text()


@pytest.mark.skipif(GXX is None, reason="g++ not installed")
def test_header_cache_size_is_the_runtimes(examples_image, tmp_path):
    """<P>_CODEWORD_CACHE_SIZE equals yono_image_codeword_cache_size() of the C++ runtime, and
    <P>_SRAM_SIZE is model region + arena + cache, for the image compiled into a program."""
    tmp, _ = examples_image
    main = tmp_path / "main.cc"
    main.write_text(
        '#include <cstdio>\n#include "yono/image.h"\n#include "app_image.h"\n'
        "static_assert(APP_SRAM_SIZE == (APP_MODEL_REGION_SIZE + 15u) / 16u * 16u + "
        'APP_TENSOR_ARENA_SIZE + APP_CODEWORD_CACHE_SIZE, "sram");\n'
        "int main() {\n  yono_image im;\n"
        "  if (yono_image_open(&im, app_image, app_image_size) != YONO_OK) return 2;\n"
        '  std::printf("%u %u\\n", (unsigned)yono_image_codeword_cache_size(&im),'
        " (unsigned)APP_CODEWORD_CACHE_SIZE);\n  return 0;\n}\n"
    )
    runtime = os.path.join(REPO, "runtime")
    srcs = sorted(
        os.path.join(runtime, "src", f)
        for f in os.listdir(os.path.join(runtime, "src"))
        if f.endswith(".cc")
    )
    exe = tmp_path / "cache"
    proc = subprocess.run(
        [
            GXX,
            "-std=c++17",
            "-O1",
            "-I",
            os.path.join(runtime, "include"),
            "-I",
            tmp,
            main,
            tmp / "app_image.cc",
            *srcs,
            "-o",
            exe,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    got, macro = subprocess.run([exe], capture_output=True, text=True, check=True).stdout.split()
    assert int(got) == int(macro) > 0

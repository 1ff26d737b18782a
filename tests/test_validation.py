"""Every bad option is refused before any long work: exit 2, one `yonoc: error:` line, no output
file. And the fidelity messages a user must see at default verbosity (issue 13)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import EXAMPLES, QUICK, run_yonoc, yonoc_in_process

MODEL = os.path.join(EXAMPLES, "imu_cnn1d.tflite")  # the smallest example: quick builds
pytestmark = pytest.mark.skipif(not os.path.isfile(MODEL), reason="example models missing")


def _files(tmp_path):
    np.savez(tmp_path / "noinputs.npz", y=np.zeros(3, np.int64))
    np.save(tmp_path / "wrongshape.npy", np.zeros((3, 7), np.float32))
    z = np.load(os.path.join(EXAMPLES, "imu_cnn1d.train.npz"))
    np.savez(tmp_path / "badlabels.npz", x=z["x"], y=np.full(len(z["y"]), 42, np.int64))
    (tmp_path / "spec.toml").write_text(
        f'[[model]]\npath = "{MODEL}"\ntrain = "{tmp_path / "badlabels.npz"}"\n'
    )


BAD = {
    "samples-npz-without-x": (["--samples", "imu_cnn1d={tmp}/noinputs.npz"], "array 'x'"),
    "samples-missing-file": (["--samples", "imu_cnn1d={tmp}/nope.npy"], "no such file"),
    "samples-no-equals": (["--samples", "{tmp}/noinputs.npz"], "MODEL=FILE"),
    "samples-wrong-shape": (["--samples", "imu_cnn1d={tmp}/wrongshape.npy"], "whole inputs"),
    "samples-unknown-model": (["--samples", "other={tmp}/wrongshape.npy"], "unknown model"),
    "subvector-group": (["--subvector-lengths", "Z=4"], "A=4,2"),
    "subvector-length": (["--subvector-lengths", "A=40"], "1..16"),
    "codewords-too-many": (["--codewords", "100000"], "1<=x<=256"),
    "codewords-zero": (["--codewords", "0"], "1<=x<=256"),
    "min-agreement-over-100": (["--min-agreement", "101"], "0..100%"),
    "min-agreement-text": (["--min-agreement", "most"], "fraction"),
    "snr-nan": (["--snr", "nan"], "finite"),
    "jobs-negative": (["-j", "-3"], "0<=x<=256"),
    "seed-negative": (["--seed", "-1"], "--seed"),
    "epsilon-negative": (["--epsilon", "-1"], "--epsilon"),
    "flash-garbage": (["--flash", "12Q"], "expected a size"),
    "sram-zero": (["--sram", "0"], "positive"),
    "target-unknown": (["--target", "z80"], "--target"),
    "output-dir-missing": (["-o", "{tmp}/no/such/dir/x.bin"], "does not exist"),
    "output-is-dir": (["-o", "{tmp}"], "directory"),
    "report-dir-missing": (["--report", "{tmp}/no/such/r.json"], "does not exist"),
    "emit-c-parent-missing": (["--emit-c", "{tmp}/no/such/c"], "does not exist"),
    "codebooks-missing": (["--codebooks", "{tmp}/nope.npz"], "does not exist"),
    "spec-missing": (["--spec", "{tmp}/nope.toml"], "does not exist"),
    "labels-out-of-range": (["--spec", "{tmp}/spec.toml"], "label 42"),
    "unknown-option": (["--colour"], "No such option"),
    "prefix-is-the-runtimes": (["--emit-c", "{tmp}", "--prefix", "yono"], "collide"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_option_is_exit_2_one_line_before_the_build(tmp_path, case):
    _files(tmp_path)
    args, text = BAD[case]
    argv = [a.format(tmp=tmp_path) for a in args]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "x.bin")]
    p = yonoc_in_process("build", MODEL, *argv, check=False)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("yonoc: error: "), p.stderr
    assert text in lines[0], lines[0]
    if case == "labels-out-of-range":  # names the file and the model
        assert "badlabels.npz" in lines[0] and "imu_cnn1d" in lines[0]
    assert not (tmp_path / "x.bin").exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".yonoc-")]


def test_bad_option_through_a_real_process(tmp_path):
    """The cases above run in-process; the installed entry point behaves the same."""
    p = run_yonoc("build", MODEL, "--colour", "-o", tmp_path / "x.bin", check=False)
    assert p.returncode == 2
    assert p.stderr.startswith("yonoc: error: No such option") and p.stderr.count("\n") == 1
    assert not (tmp_path / "x.bin").exists()


def test_option_syntax_that_is_accepted():
    from yonoc.cli_params import Fraction, Size

    size, frac = Size(), Fraction()
    for text, n in (
        ("0x80000", 524288),
        ("512K", 524288),
        ("512KiB", 524288),
        ("512kb", 524288),
        ("1M", 1 << 20),
        ("1.5M", 3 << 19),
        ("4096", 4096),
    ):
        assert int(size.convert(text, None, None)) == n, text
    for text, v in (
        ("0.99", 0.99),
        ("99", 0.99),
        ("99%", 0.99),
        ("99.5", 0.995),
        ("1", 1.0),
        ("0", 0.0),
        ("50%", 0.5),
    ):
        assert frac.convert(text, None, None) == pytest.approx(v), text


def test_hex_sizes_and_case_insensitive_target_build(tmp_path):
    out = tmp_path / "x.bin"
    p = yonoc_in_process(
        "build",
        MODEL,
        "-o",
        out,
        "--no-check",
        "--mode",
        "int8",  # sizes and target parsing do not depend on the mode: the quickest one
        "--target",
        "STM32H747",
        "--flash",
        "0x100000",
        "--sram",
        "512KiB",
        check=False,
    )
    assert p.returncode == 0 and out.exists(), p.stderr
    small = tmp_path / "small.bin"
    p = yonoc_in_process(
        "build", MODEL, "-o", small, "--no-check", "--mode", "int8", "--flash", "1K", check=False
    )
    assert p.returncode == 7 and "does not fit" in p.stderr and "flash" in p.stderr
    assert not small.exists()


def test_missing_input_file_is_exit_3_in_every_command(tmp_path):
    for args in (
        ("build", tmp_path / "nope.tflite", "-o", tmp_path / "x.bin"),
        ("inspect", tmp_path / "nope.bin"),
        ("extract", tmp_path / "nope.bin", "-o", tmp_path / "out"),
    ):
        p = yonoc_in_process(*args, check=False)
        assert p.returncode == 3, p.stderr
        assert "nope" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_image_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 100)
    p = yonoc_in_process("inspect", bad, check=False)
    assert p.returncode == 4 and str(bad) in p.stderr


def test_python_dash_m_yonoc_and_its_help_say_yonoc():
    p = subprocess.run([sys.executable, "-m", "yonoc", "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("Usage: yonoc ")
    # the command list shows each summary whole (no "..." truncation)
    assert "..." not in p.stdout.split("Commands:")[1]
    p = subprocess.run(
        [sys.executable, "-m", "yonoc", "build", "--help"], capture_output=True, text=True
    )
    assert "--flash SIZE" in p.stdout and "--sram SIZE" in p.stdout
    assert "stm32h747" in p.stdout  # --target lists its choices


def _strict(text):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_report_is_strict_json_and_fidelity_warnings_at_default_verbosity(tmp_path):
    """A model alone (no sample file beside it), pq-m at a target it cannot meet: exit 0, but
    the user is told it was judged on generated inputs only and is below the target."""
    model = tmp_path / "lonely.tflite"
    shutil.copy(MODEL, model)
    rep = tmp_path / "r.json"
    p = yonoc_in_process(
        "build",
        model,
        "-o",
        tmp_path / "x.bin",
        "--mode",
        "pq-m",
        "--snr",
        "60",
        "--report",
        rep,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert "lonely: fidelity checked on generated inputs only" in p.stderr
    assert "lonely: below the fidelity target" in p.stderr and "pq-m" in p.stderr
    assert "lonely: " in p.stderr and "TFLM runs" in p.stderr  # the completion line
    r = _strict(rep.read_text())
    m = r["models"][0]
    assert m["fidelity"] in ("measured", "near-constant") and m["snr_db"] < 60
    assert 0.0 <= m["agreement_generated"] <= 1.0  # classifier: top-1 on generated inputs
    assert any("below the fidelity target" in w for w in m["warnings"])


def test_strict_json_turns_infinities_into_null():
    from yonoc.cli import strict

    text = json.dumps(strict({"a": float("inf"), "b": [float("nan"), 1.5]}), allow_nan=False)
    assert _strict(text) == {"a": None, "b": [None, 1.5]}


def test_mode_and_no_check_warnings(tmp_path):
    p = yonoc_in_process("build", MODEL, "-o", tmp_path / "a.bin", *QUICK, check=False)
    assert "--no-check: fidelity is not measured" in p.stderr
    p = yonoc_in_process(
        "build",
        MODEL,
        "-o",
        tmp_path / "b.bin",
        "--mode",
        "pq-mopt",
        *QUICK,
        check=False,
    )
    assert "pq-mopt without data" in p.stderr and "behaves like pq-m" in p.stderr


def test_quiet_build_prints_nothing_but_warnings(tmp_path):
    p = yonoc_in_process(
        "-q", "build", MODEL, "-o", tmp_path / "a.bin", "--mode", "int8", check=False
    )
    assert p.returncode == 0 and p.stderr == ""


def test_constant_reference_outputs_are_unmeasurable_and_kept_raw():
    """Identical outputs on every check input: any rebuilt model that outputs the same would
    score 'SNR inf'. The fidelity pass must not code weights on the strength of it."""
    from yonoc.frontend import read_model
    from yonoc.interpreter import generated_inputs
    from yonoc.passes import encode, fidelity
    from yonoc.pq import codebooks as pq

    m = read_model(MODEL)
    encs = encode.encode_model(m, pq.learn(m.weights, pq.CodebookOptions()))
    x = generated_inputs(m, 1)[0]
    ev = fidelity.Evaluator(m, [x] * 8, real=8)
    target = fidelity.FidelityTarget()
    assert ev.spread == 0
    choices, meas = fidelity.choose(m, encs, ev, target)
    assert choices == [encode.RAW] * len(encs)
    assert not meas.measurable and not meas.meets(target)


def test_near_constant_outputs_are_judged_on_their_varying_part():
    """Outputs that barely vary: a rebuilt model scoring the plain SNR target may still have
    lost what depends on the input, so the target applies to the varying part too."""
    from yonoc.passes.fidelity import Evaluator, FidelityTarget, Measurement

    target = FidelityTarget(20.0)
    assert Measurement(30.0, None).meets(target)
    assert not Measurement(30.0, None, snr_varying_db=5.0).meets(target)
    assert Measurement(30.0, None, snr_varying_db=25.0).meets(target)
    ev = Evaluator.__new__(Evaluator)
    ev.signal, ev.spread = 1000.0, 1.0  # varies by 0.1 % of the energy: 30 dB
    assert ev.near_constant()
    ev.spread = 100.0  # 10 dB
    assert not ev.near_constant()


def test_a_candidate_measured_again_is_not_run_again(monkeypatch):
    """The fidelity search meets the same candidate more than once (every probe again when the
    held-out check raises the target); TFLM runs it once, and the repeat gives the same figure."""
    from yonoc import interpreter
    from yonoc.frontend import read_model
    from yonoc.passes import encode, fidelity
    from yonoc.pq import codebooks as pq

    m = read_model(MODEL)
    encs = encode.encode_model(m, pq.learn(m.weights, pq.CodebookOptions()))
    ev = fidelity.Evaluator(m, interpreter.generated_inputs(m, 4))
    runs = []
    real_run = interpreter.run
    monkeypatch.setattr(interpreter, "run", lambda *a, **k: runs.append(1) or real_run(*a, **k))
    coded = encode.rebuilt_model(m, encs, [0] * len(encs), True)
    raw = encode.rebuilt_model(m, encs, [encode.RAW] * len(encs), True)
    first = ev.measure(coded)
    first.measurable = False  # a caller marking its copy does not change the remembered one
    again = ev.measure(coded)
    assert len(runs) == 1 and again.snr_db == first.snr_db and again.measurable
    assert ev.noise(coded, 2) == ev.noise(coded, 2) and len(runs) == 2  # fewer samples: a run
    assert ev.measure(raw).snr_db == float("inf") and len(runs) == 3
    assert ev.evaluations == 3


def test_coarsen_takes_measured_steps_that_hold_the_target_and_never_adds_bytes():
    """fidelity.coarsen from an all-raw allocation: every tensor it moves goes exactly one step
    (raw to its finest rate, largest saving first), the result measures as meeting the
    target, and a target nothing can meet leaves the allocation as it was."""
    from yonoc import interpreter
    from yonoc.frontend import read_model
    from yonoc.passes import encode, fidelity
    from yonoc.pq import codebooks as pq

    m = read_model(MODEL)
    encs = encode.encode_model(m, pq.learn(m.weights, pq.CodebookOptions()))
    ev = fidelity.Evaluator(m, interpreter.generated_inputs(m, 8))
    n = len(encs)

    def build(c):
        return encode.rebuilt_model(m, encs, c, True)

    raw = [encode.RAW] * n
    start = (raw, ev.measure(build(raw)))
    target = fidelity.FidelityTarget(20.0)
    c, got = fidelity.coarsen(encs, ev, target, build, start, tries=n)
    assert got.meets(target) and got == ev.measure(build(c))
    moved = [i for i in range(n) if c[i] != encode.RAW]
    assert moved and all(c[i] == len(encs[i].rates) - 1 for i in moved)
    assert sum(e.bytes_at(x) for e, x in zip(encs, c)) < sum(e.raw_bytes() for e in encs)
    # only the largest savings are tried
    one, _ = fidelity.coarsen(encs, ev, target, build, start, tries=1)
    biggest = max(
        range(n), key=lambda i: encs[i].raw_bytes() - encs[i].bytes_at(len(encs[i].rates) - 1)
    )
    assert [i for i in range(n) if one[i] != encode.RAW] in ([], [biggest])
    unreachable = fidelity.FidelityTarget(200.0)
    assert fidelity.coarsen(encs, ev, unreachable, build, start, tries=n)[0] == raw

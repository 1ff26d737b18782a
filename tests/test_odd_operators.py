"""Odd models, by their operators: builtin codes, LEAKY_RELU, LSTM, custom and signal ops,
several subgraphs, shared weight buffers (docs/model-support.md).
Tiny models: tests/odd_models.py; (real) cases: ../shared/models, skipped when absent.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from odd_models import BO, OP, TT, Net, build, coded, lstm_model, me, small_cnn, tfl, write

from yonoc import compiler, interpreter
from yonoc.backend import image_format as fmt
from yonoc.errors import ModelError
from yonoc.frontend import read_model, read_model_bytes
from yonoc.ir import Group
from yonoc.options import BuildOptions

from conftest import QUICK, SHARED, needs_shared, run_yonoc, tflm_outputs, yonoc_in_process

# --------------------------------------------------------------------------- frontend basics


def test_operator_codes_written_only_in_builtin_code_are_read():
    # model_editor (like any writer may) leaves deprecated_builtin_code at 0 = ADD; TFLM reads
    # max(both), and so must the frontend, or it finds no weights at all
    ir = read_model_bytes(small_cnn(), "cnn")
    assert ir.operators == {
        "CONV_2D": 2,
        "DEPTHWISE_CONV_2D": 1,
        "FULLY_CONNECTED": 1,
        "RESHAPE": 1,
    }
    assert sorted((w.op_type, w.group) for w in ir.weights) == [
        ("CONV_2D", Group.CONV3X3),
        ("CONV_2D", Group.POINTWISE),
        ("DEPTHWISE_CONV_2D", Group.CONV3X3),
        ("FULLY_CONNECTED", Group.POINTWISE),
    ]


def leaky_relu_model(alpha: float) -> bytes:
    """LEAKY_RELU(alpha) alone, requantising to a finer output scale: each output is one
    rounding away from the exact value, so the lift must be within 1 LSB."""
    n = Net(21)
    x = n.act([1, 6, 6, 3], scale=0.1, zp=3)
    o = tfl.LeakyReluOptionsT()
    o.alpha = alpha
    y = n.op(OP.LEAKY_RELU, [x], [n.act([1, 6, 6, 3], scale=0.04, zp=-20)], BO.LeakyReluOptions, o)
    return n.model([x], [y])


def test_leaky_relu_alpha_is_read_from_the_model_and_the_lift_matches_tflm():
    """The finetuning lift computes LEAKY_RELU with the file's alpha (not a fixed 0.2): its
    outputs stay within 1 LSB of TFLM's, where 0.2 would be several LSB off."""
    torch = pytest.importorskip("torch")
    from yonoc.finetune.lift import build_lift

    model = read_model_bytes(leaky_relu_model(0.1), "leaky")
    (op,) = [op for op in model.graph.ops if op.name == "LEAKY_RELU"]
    assert op.options["alpha"] == pytest.approx(0.1)
    xs = interpreter.generated_inputs(model, 8)
    info = model.outputs[0]
    ref = np.stack(
        [
            (o[0].astype(np.float64) - info.zero_point) * info.scale
            for o in interpreter.run(model.data, xs)
        ]
    )
    x = (np.stack(xs).astype(np.float64) - model.inputs[0].zero_point) * model.inputs[0].scale
    with torch.no_grad():
        lifted = build_lift(model, dtype=torch.float64)(torch.as_tensor(x))[0][0].numpy()
    lsb = np.abs(lifted.reshape(ref.shape) - ref) / info.scale
    assert lsb.max() <= 1.0 + 1e-4, lsb.max()  # (float32 scales)
    # the check has teeth: the same outputs with alpha 0.2 are far off
    op.options["alpha"] = 0.2
    with torch.no_grad():
        wrong = build_lift(model, dtype=torch.float64)(torch.as_tensor(x))[0][0].numpy()
    assert (np.abs(wrong.reshape(ref.shape) - ref) / info.scale).max() > 3.0


def dynamic_flatten_model() -> bytes:
    """3x3 conv -> Flatten as Keras writes it with a dynamic batch (SHAPE -> STRIDED_SLICE ->
    PACK -> RESHAPE, as in the ST model zoo's image classifiers) -> FC."""
    n = Net(22)
    x = n.act([1, 6, 6, 3], scale=0.05)
    h = n.conv(x, 8)
    shape = n.op(OP.SHAPE, [h], [n.act([4], TT.INT32, None)], BO.ShapeOptions, tfl.ShapeOptionsT())
    sl = tfl.StridedSliceOptionsT()
    sl.shrinkAxisMask = 1
    one = [n.const(np.array([v], np.int32), TT.INT32) for v in (0, 1, 1)]
    batch = n.op(
        OP.STRIDED_SLICE, [shape, *one], [n.act([], TT.INT32, None)], BO.StridedSliceOptions, sl
    )
    pk = tfl.PackOptionsT()
    pk.valuesCount, pk.axis = 2, 0
    rest = n.const(np.array(6 * 6 * 8, np.int32), TT.INT32)
    target = n.op(OP.PACK, [batch, rest], [n.act([2], TT.INT32, None)], BO.PackOptions, pk)
    q = h.quantization
    flat = n.op(OP.RESHAPE, [h, target], [n.act([1, 288], scale=q.scales, zp=q.zero_points)])
    return n.model([x], [n.fc(flat, 5)])


def test_a_dynamic_batch_flatten_is_lifted_and_its_model_coded_output_aware(tmp_path, caplog):
    """The shape arithmetic feeding a RESHAPE (SHAPE, STRIDED_SLICE, PACK) is not computed by
    the lift (it reshapes to the static output shape): the model is lifted, matches TFLM, and
    gets output-aware codes instead of falling back to nearest codewords."""
    torch = pytest.importorskip("torch")
    from yonoc.finetune.lift import build_lift, shape_only_ops

    data = dynamic_flatten_model()
    model = read_model_bytes(data, "dynflat")
    kinds = [op.name for op in model.graph.ops]
    assert [kinds[k] for k in sorted(shape_only_ops(model.graph))] == [
        "SHAPE",
        "STRIDED_SLICE",
        "PACK",
    ]
    xs = interpreter.generated_inputs(model, 8)
    info = model.outputs[0]
    ref = np.stack([interpreter.dequantize(o[0], info) for o in interpreter.run(model.data, xs)])
    x = (np.stack(xs).astype(np.float64) - model.inputs[0].zero_point) * model.inputs[0].scale
    with torch.no_grad():
        lifted = build_lift(model, dtype=torch.float64)(torch.as_tensor(x))[0][0].numpy()
    assert (np.abs(lifted.reshape(ref.shape) - ref) / info.scale).max() <= 2.0
    with caplog.at_level("INFO", logger="yonoc"):
        build(tmp_path, {"dynflat": data}, check=False)
    assert "/2 tensors encoded output-aware on 128 calibration inputs" in caplog.text
    assert "nearest-codeword encoding" not in caplog.text


# --------------------------------------------------------------------------- LSTM


def test_lstm_gate_matrices_stay_raw_fc_is_compressed(tmp_path):
    data = lstm_model()
    ir = read_model_bytes(data, "lstm")
    assert ir.operators["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 1
    assert [w.op_type for w in ir.weights] == ["FULLY_CONNECTED"]
    res, rebuilt = build(tmp_path, {"lstm": data}, mode="pq-m")
    r = res.models[0]
    assert coded(r) == 1 and r.snr_db is not None
    # the raw gate matrices are byte-identical in the rebuilt model
    fc = ir.weights[0]
    same = np.frombuffer(rebuilt["lstm"], np.uint8) == np.frombuffer(data, np.uint8)
    same[fc.offset : fc.offset + fc.size] = True
    for off, length in ir.erasable:
        same[off : off + length] = True
    assert same.all()


def test_a_model_the_lift_cannot_express_is_coded_data_free_not_the_build_failed(tmp_path, caplog):
    """Training data for an LSTM model (the lift has no UNIDIRECTIONAL_SEQUENCE_LSTM): the
    model is coded by the data-free fidelity pass with a warning; the build goes on."""
    pytest.importorskip("torch")
    from yonoc.passes.em import DataSpec, EMOptions

    rng = np.random.default_rng(0)
    x = rng.random((16, 3, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)  # its FC has 3 outputs
    for part in ("train", "test"):
        np.savez(tmp_path / f"{part}.npz", x=x, y=y)
    spec = DataSpec(train=str(tmp_path / "train.npz"), test=str(tmp_path / "test.npz"))
    # no shortcut past the M-step: the first finetuning call meets the LSTM
    never_precheck = EMOptions(precheck=False, coded_tries=0)
    with caplog.at_level("WARNING", logger="yonoc"):
        res, rebuilt = build(
            tmp_path, {"lstm": lstm_model()}, data=(("lstm", spec),), em=never_precheck
        )
    assert "lstm: not finetuned, coded as a model without data" in caplog.text
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in caplog.text
    r = res.models[0]
    assert r.snr_db is not None and r.snr_db >= 20.0 and r.accuracy is None


@needs_shared
def test_real_lstm_model(tmp_path):
    path = os.path.join(SHARED, "tflite-micro", "trained_lstm_int8.tflite")
    ir = read_model(path)
    assert [w.op_type for w in ir.weights] == ["FULLY_CONNECTED"]
    res = compiler.build([path], BuildOptions(jobs=1, generated_samples=8))
    assert res.models[0].snr_db >= 20.0


# --------------------------------------------------------------------------- custom / signal ops


def custom_op_model(custom: str, options: bytes | None) -> bytes:
    """int16 audio -> custom op with an int16 constant (e.g. a window) -> int16x8 FC."""
    n = Net(8)
    x = n.act([1, 16], TT.INT16, None)
    win = n.const(np.hanning(16).astype(np.float32).__mul__(16384).astype(np.int16), TT.INT16)
    y = n.op(
        OP.CUSTOM, [x, win], [n.act([1, 16], TT.INT16, None)], custom=custom, custom_options=options
    )
    y.quantization = Net.q(1.0)
    z = n.fc(y, 4, TT.INT16, out_scale=4.0)
    x.quantization = Net.q(1.0)
    return n.model([x], [z])


def test_tflm_signal_op_model_is_checked_and_compressed_around_it(tmp_path):
    from flatbuffers import flexbuffers

    data = custom_op_model("SignalWindow", bytes(flexbuffers.Dumps({"shift": 14})))
    ir = read_model_bytes(data, "sig")
    assert ir.custom_ops == ["SignalWindow"]
    assert [w.op_type for w in ir.weights] == ["FULLY_CONNECTED"]  # the window stays raw
    res, rebuilt = build(tmp_path, {"sig": data}, mode="pq-m")
    assert coded(res.models[0]) == 1 and res.models[0].snr_db is not None


def test_unknown_custom_op_is_refused_in_check_mode_with_a_clear_message(tmp_path):
    path = write(tmp_path, "vendor", custom_op_model("VendorFFT", None))
    p = yonoc_in_process("build", path, "-o", tmp_path / "img.bin", "-q", check=False)
    assert p.returncode == ModelError.exit_code
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert "vendor: the TFLM interpreter cannot run this model" in p.stderr
    assert "VendorFFT" in p.stderr and "--no-check" in p.stderr
    yonoc_in_process(
        "build",
        path,
        "-o",
        tmp_path / "img.bin",
        *QUICK,
        "--mode",
        "pq-m",
    )
    r = json.loads(run_yonoc("inspect", tmp_path / "img.bin", "--json").stdout)
    assert r["models"][0]["name"] == "vendor"


@needs_shared
def test_real_signal_op_model_passes_through(tmp_path):
    path = os.path.join(SHARED, "tflite-micro", "audio_preprocessor_int8.tflite")
    ir = read_model(path)
    assert ir.weights == [] and any(c.startswith("Signal") for c in ir.custom_ops)
    res = compiler.build([path], BuildOptions(jobs=1, generated_samples=4))
    task = fmt.rebuild(fmt.read_image(res.image), 0)
    xs = interpreter.generated_inputs(ir, 2)
    for a, b in zip(tflm_outputs(ir.data, xs), tflm_outputs(task, xs)):
        assert np.array_equal(a, b)


# --------------------------------------------------------------------------- subgraphs, sharing


def if_model(shared: bool) -> bytes:
    """Subgraph 0: IF(constant true) -> subgraph 1 (FC) / subgraph 2 (FC, maybe the same
    weights)."""
    n0 = Net(9)
    x, y = n0.act([1, 8]), n0.act([1, 4], scale=0.2)
    cond = n0.const(np.array([True]), TT.BOOL)
    o = tfl.IfOptionsT()
    o.thenSubgraphIndex, o.elseSubgraphIndex = 1, 2
    n0.op(OP.IF, [cond, x], [y], BO.IfOptions, o)
    branches, w = [], n0.weights((4, 8), per_channel=False)
    for k in range(2):
        n = Net(10 + k)
        bx = n.act([1, 8])
        w = w if shared and k else n.weights((4, 8), per_channel=False)
        branches.append(n.subgraph([bx], [n.fc(bx, 4, w=w)]))
    return bytes(me.Model(subgraphs=[n0.subgraph([x], [y])] + branches).build())


def test_multiple_subgraphs_weights_everywhere_checked_on_subgraph_0(tmp_path):
    ir = read_model_bytes(if_model(False), "ifm")
    assert len(ir.weights) == 2 and ir.inputs[0].shape == (1, 8)
    assert len(read_model_bytes(if_model(True), "ifs").weights) == 1  # shared across subgraphs
    res, rebuilt = build(tmp_path, {"ifm": if_model(False)}, mode="pq-m")
    assert coded(res.models[0]) == 2 and res.models[0].snr_db is not None


def shared_weights_model(agree: bool) -> bytes:
    n = Net(12)
    x = n.act([1, 5, 5, 3])
    if agree:  # the same 3x3 kernel twice (e.g. a weight-tied block)
        w = n.weights((3, 3, 3, 3))
        y = n.conv(n.conv(x, 3, w=w), 3, w=w)
    else:  # one buffer as a 3x3 conv kernel [4,3,3,3] and as FC weights [3,36]
        w = n.weights((4, 3, 3, 3))
        fw = me.Tensor(shape=[3, 36], dtype=TT.INT8, buffer=w.buffer, quantization=Net.q(0.006))
        y = n.fc(n.flatten(n.conv(x, 4, w=w, padding="VALID")), 3, w=fw)
    return n.model([x], [y])


def test_shared_weight_buffer_agreeing_uses_compressed_once(tmp_path):
    data = shared_weights_model(True)
    ir = read_model_bytes(data, "tied")
    assert len(ir.weights) == 1
    res, rebuilt = build(tmp_path, {"tied": data}, mode="pq-m")
    task = fmt.read_image(res.image).tasks[0]
    assert sum(f.kind == fmt.FillKind.PQ for f in task.fills) == 1
    tflm_outputs(rebuilt["tied"], interpreter.generated_inputs(ir, 2))


def test_shared_weight_buffer_disagreeing_uses_stay_raw(tmp_path):
    data = shared_weights_model(False)
    ir = read_model_bytes(data, "mixed")
    assert ir.operators["CONV_2D"] == 1 and ir.operators["FULLY_CONNECTED"] == 1
    assert ir.weights == []
    res, rebuilt = build(tmp_path, {"mixed": data})
    xs = interpreter.generated_inputs(ir, 2)
    for a, b in zip(tflm_outputs(data, xs), tflm_outputs(rebuilt["mixed"], xs)):
        assert np.array_equal(a, b)

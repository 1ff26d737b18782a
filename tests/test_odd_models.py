"""Odd and unsupported models: what yonoc does with each (docs/model-support.md).

Every case is a tiny flatbuffer built here with TFLM's own `model_editor`, valid for the TFLM
interpreter wherever the policy is to compress or pass through, plus the real models of
../shared/models that show the same thing (skipped if that folder is absent).
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

from conftest import SHARED, needs_shared, run_yonoc, tflm_outputs

me = pytest.importorskip("tflite_micro.tensorflow.lite.micro.compression.model_editor")
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as tfl  # noqa: E402

from yonoc import compiler, interpreter  # noqa: E402
from yonoc.backend import image_format as fmt  # noqa: E402
from yonoc.errors import ModelError, YonocError  # noqa: E402
from yonoc.frontend import read_model, read_model_bytes  # noqa: E402
from yonoc.ir import Group  # noqa: E402
from yonoc.options import BuildOptions  # noqa: E402
from yonoc.passes.encode import channel_scales  # noqa: E402

TT, OP, BO = tfl.TensorType, tfl.BuiltinOperator, tfl.BuiltinOptions


# --------------------------------------------------------------------------- tiny model builder


class Net:
    """A one-subgraph model under construction; every constant gets seeded random values."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.ops = []

    @staticmethod
    def q(scale, zp=0, axis=None):
        return me.Quantization(scales=scale, zero_points=zp, axis=axis)

    def act(self, shape, dtype=TT.INT8, scale=0.05, zp=0):
        return me.Tensor(
            shape=shape, dtype=dtype, quantization=self.q(scale, zp) if scale else None
        )

    def const(self, arr, dtype, quant=None):
        return me.Tensor(shape=arr.shape, dtype=dtype, data=arr, quantization=quant)

    def weights(self, shape, axis=0, per_channel=True, qdim=None, dtype=TT.INT8):
        n = shape[axis]
        if dtype == TT.UINT8:
            return self.const(
                self.rng.integers(0, 256, shape, dtype=np.uint8), dtype, self.q(0.01, 128)
            )
        w = self.const(self.rng.integers(-127, 128, shape, dtype=np.int8), dtype)
        if per_channel:
            w.quantization = self.q(
                [0.004 + 0.001 * i for i in range(n)], [0] * n, axis if qdim is None else qdim
            )
        else:
            w.quantization = self.q(0.006)
        return w

    def bias(self, n, in_scale, w, dtype=TT.INT32, qdim=None):
        s = w.quantization.scales
        s = list(s) if isinstance(s, list) else [s] * n
        arr = self.rng.integers(-300, 300, n).astype(np.int32 if dtype == TT.INT32 else np.int64)
        return self.const(arr, dtype, self.q([in_scale * x for x in s], [0] * n, qdim))

    def op(self, code, ins, outs, opt_type=None, opts=None, custom=None, custom_options=None):
        o = me.Operator(opcode=code, inputs=ins, outputs=outs, custom_code=custom)
        if opt_type is not None:
            o._fb.builtinOptionsType, o._fb.builtinOptions = opt_type, opts
        if custom_options is not None:
            o._fb.customOptions = list(custom_options)
        self.ops.append(o)
        return outs[0] if outs else None

    # layers: x -> y, with quantised int8 (or int16x8) weights
    def conv(
        self,
        x,
        cout,
        k=3,
        dtype=TT.INT8,
        out_scale=0.1,
        w=None,
        padding="SAME",
        bias_qdim=None,
        qdim=None,
        per_channel=True,
    ):
        n, h, wd, cin = x.shape
        w = w or self.weights((cout, k, k, cin), 0, per_channel, qdim)
        bdt = TT.INT64 if dtype == TT.INT16 else TT.INT32
        b = self.bias(cout, x.quantization.scales, w, bdt, bias_qdim)
        o = tfl.Conv2DOptionsT()
        o.padding = tfl.Padding.SAME if padding == "SAME" else tfl.Padding.VALID
        o.strideW = o.strideH = o.dilationWFactor = o.dilationHFactor = 1
        oh, ow = (h, wd) if padding == "SAME" else (h - k + 1, wd - k + 1)
        y = self.act([n, oh, ow, cout], dtype, out_scale)
        return self.op(OP.CONV_2D, [x, w, b], [y], BO.Conv2DOptions, o)

    def dwconv(self, x, dtype=TT.INT8, out_scale=0.1, qdim=3):
        n, h, wd, c = x.shape
        w = self.weights((1, 3, 3, c), 3, True, qdim)
        b = self.bias(c, x.quantization.scales, w, TT.INT64 if dtype == TT.INT16 else TT.INT32)
        o = tfl.DepthwiseConv2DOptionsT()
        o.padding = tfl.Padding.SAME
        o.strideW = o.strideH = o.depthMultiplier = o.dilationWFactor = o.dilationHFactor = 1
        y = self.act([n, h, wd, c], dtype, out_scale)
        return self.op(OP.DEPTHWISE_CONV_2D, [x, w, b], [y], BO.DepthwiseConv2DOptions, o)

    def flatten(self, x):
        n = int(np.prod(x.shape[1:]))
        y = self.act(
            [1, n],
            x.dtype,
            x.quantization.scales if x.quantization else None,
            x.quantization.zero_points if x.quantization else 0,
        )
        shp = self.const(np.array([1, n], np.int32), TT.INT32)
        return self.op(OP.RESHAPE, [x, shp], [y])

    def fc(self, x, out, dtype=TT.INT8, out_scale=0.2, w=None, float_weights=False):
        if float_weights:
            w = self.const(
                self.rng.standard_normal((out, x.shape[1])).astype(np.float32), TT.FLOAT32
            )
            b = self.const(np.zeros(out, np.float32), TT.FLOAT32)
        else:
            w = w or self.weights((out, x.shape[1]), 0, per_channel=False)
            in_scale = x.quantization.scales if x.quantization else 1.0
            b = self.bias(out, in_scale, w, TT.INT64 if dtype == TT.INT16 else TT.INT32)
            if dtype == TT.FLOAT32:  # hybrid: float activations, int8 weights
                b = self.const(np.zeros(out, np.float32), TT.FLOAT32)
        y = self.act([1, out], dtype, None if dtype == TT.FLOAT32 else out_scale)
        return self.op(
            OP.FULLY_CONNECTED,
            [x, w, b],
            [y],
            BO.FullyConnectedOptions,
            tfl.FullyConnectedOptionsT(),
        )

    def quantize(self, x, dtype, scale, zp):
        return self.op(OP.QUANTIZE, [x], [self.act(x.shape, dtype, scale, zp)])

    def subgraph(self, inputs, outputs, tensors=()):
        return me.Subgraph(
            tensors=list(tensors), inputs=inputs, outputs=outputs, operators=self.ops
        )

    def model(self, inputs, outputs, tensors=()):
        return bytes(me.Model(subgraphs=[self.subgraph(inputs, outputs, tensors)]).build())


def small_cnn(dtype=TT.INT8, seed=0) -> bytes:
    """3x3 conv -> 3x3 depthwise -> 1x1 conv -> FC: one tensor of each compressible kind."""
    n = Net(seed)
    x = n.act([1, 6, 6, 3], dtype, 0.05)
    y = n.fc(
        n.flatten(n.conv(n.dwconv(n.conv(x, 8, dtype=dtype), dtype=dtype), 8, k=1, dtype=dtype)),
        5,
        dtype=dtype,
    )
    return n.model([x], [y])


def lstm_model() -> bytes:
    """int8 UNIDIRECTIONAL_SEQUENCE_LSTM (int16 cell state) -> FC, laid out like
    tflite-micro's trained_lstm_int8.tflite."""
    T, n_in, n_cell = 3, 4, 4
    n = Net(1)
    x = n.act([1, T, n_in], scale=1 / 255, zp=-128)
    h = n.act([1, T, n_cell], scale=1 / 128)
    gates = [n.weights((n_cell, n_in), per_channel=False) for _ in range(4)]
    recurrent = [n.weights((n_cell, n_cell), per_channel=False) for _ in range(4)]
    biases = [n.bias(n_cell, 1 / 255, gates[0]) for _ in range(4)]
    state_h = me.Tensor(shape=[1, n_cell], dtype=TT.INT8, quantization=n.q(1 / 128))
    state_c = me.Tensor(shape=[1, n_cell], dtype=TT.INT16, quantization=n.q(2.0**-12))
    state_h.is_variable = state_c.is_variable = True
    o = tfl.UnidirectionalSequenceLSTMOptionsT()
    o.fusedActivationFunction, o.cellClip = tfl.ActivationFunctionType.TANH, 10.0
    n.op(
        OP.UNIDIRECTIONAL_SEQUENCE_LSTM,
        [x]
        + gates
        + recurrent
        + [None] * 3
        + biases
        + [None] * 2
        + [state_h, state_c]
        + [None] * 4,
        [h],
        BO.UnidirectionalSequenceLSTMOptions,
        o,
    )
    y = n.fc(n.flatten(h), 3)
    return n.model([x], [y], tensors=[state_h, state_c])


# --------------------------------------------------------------------------- helpers


def build(tmp_path, models: dict, **opts):
    """Build `models` ({name: bytes}) in-process; (BuildResult, {name: rebuilt bytes})."""
    paths = []
    for name, data in models.items():
        p = tmp_path / f"{name}.tflite"
        p.write_bytes(data)
        paths.append(str(p))
    opts.setdefault("jobs", 1)
    opts.setdefault("generated_samples", 16)
    res = compiler.build(paths, BuildOptions(**opts))
    img = fmt.read_image(res.image)
    return res, {t.name: fmt.rebuild(img, i) for i, t in enumerate(img.tasks)}


def result(res, name):
    return next(m for m in res.models if m.name == name)


def coded(r) -> int:
    """Tensors stored as PQ codes (not raw)."""
    return sum(v for k, v in r.rate_counts.items() if k != "raw")


def write(tmp_path, name, data) -> str:
    p = tmp_path / f"{name}.tflite"
    p.write_bytes(data)
    return str(p)


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


# --------------------------------------------------------------------------- float / hybrid


def float_model() -> bytes:
    n = Net(2)
    x = n.act([1, 4, 4, 2], TT.FLOAT32, None)
    w = n.const(n.rng.standard_normal((3, 3, 3, 2)).astype(np.float32), TT.FLOAT32)
    b = n.const(np.zeros(3, np.float32), TT.FLOAT32)
    o = tfl.Conv2DOptionsT()
    o.padding, o.strideW, o.strideH = tfl.Padding.SAME, 1, 1
    o.dilationWFactor = o.dilationHFactor = 1
    y = n.op(OP.CONV_2D, [x, w, b], [n.act([1, 4, 4, 3], TT.FLOAT32, None)], BO.Conv2DOptions, o)
    z = n.fc(n.flatten(y), 4, TT.FLOAT32, float_weights=True)
    return n.model([x], [z])


def test_float32_model_passes_through_raw_with_a_warning(tmp_path, caplog):
    data = float_model()
    with caplog.at_level(logging.WARNING, "yonoc"):
        res, rebuilt = build(tmp_path, {"f32": data, "cnn": small_cnn()}, mode="pq-m")
    assert "f32: 2 float conv/FC weight tensor(s) stay raw" in caplog.text
    r = result(res, "f32")
    assert r.tensors == 0 and r.rate_counts == {}
    assert coded(result(res, "cnn")) == 4  # the int8 model beside it is still compressed
    xs = interpreter.generated_inputs(read_model_bytes(data, "f32"), 4)
    for a, b in zip(tflm_outputs(data, xs), tflm_outputs(rebuilt["f32"], xs)):
        assert np.array_equal(a, b)  # only names erased


def hybrid_model() -> bytes:
    n = Net(3)
    x = n.act([1, 8], TT.FLOAT32, None)
    return n.model([x], [n.fc(x, 4, TT.FLOAT32)])


def test_hybrid_model_needs_no_check_because_tflm_cannot_run_it(tmp_path):
    data = hybrid_model()
    assert len(read_model_bytes(data, "h").weights) == 1  # int8 weights: compressible
    with pytest.raises(
        ModelError,
        match=r"FLOAT32 with filter type: INT8 not supported.*"
        r"--no-check",
    ):
        build(tmp_path, {"hybrid": data})
    res, _ = build(tmp_path, {"hybrid": data}, check=False, mode="pq-m")
    assert coded(result(res, "hybrid")) == 1


# --------------------------------------------------------------------------- int16 activations


def test_int16_activations_16x8_compressed_and_checked_in_tflm(tmp_path):
    data = small_cnn(TT.INT16)
    ir = read_model_bytes(data, "a16")
    assert ir.inputs[0].dtype == "int16" and len(ir.weights) == 4
    res, rebuilt = build(tmp_path, {"a16": data}, mode="pq-m")
    r = result(res, "a16")
    assert coded(r) == 4 and r.snr_db is not None and r.evaluations > 0
    res, rebuilt = build(tmp_path, {"a16": data})  # yono: meets the target in TFLM
    r = result(res, "a16")
    assert r.snr_db >= 20.0
    xs = interpreter.generated_inputs(ir, 2)
    assert xs[0].dtype == np.int16 and np.ptp(xs[0].astype(int)) > 256  # the int16 range
    assert tflm_outputs(rebuilt["a16"], xs)[0].dtype == np.int16


# --------------------------------------------------------------------------- uint8 I/O


def uint8_io_model(float_out: bool) -> bytes:
    n = Net(4)
    x = n.act([1, 5, 5, 1], TT.UINT8, 1 / 255, 0)
    h = n.quantize(x, TT.INT8, 1 / 255, -128)
    y = n.fc(n.flatten(n.conv(h, 4)), 3)
    if float_out:
        out = n.op(OP.DEQUANTIZE, [y], [n.act([1, 3], TT.FLOAT32, None)])
    else:
        out = n.quantize(y, TT.UINT8, 0.2, 128)
    return n.model([x], [out])


def test_uint8_io_with_quantize_dequantize_is_compressed(tmp_path):
    models = {"u8_u8": uint8_io_model(False), "u8_f32": uint8_io_model(True)}
    res, rebuilt = build(tmp_path, models, mode="pq-m")
    for name, data in models.items():
        ir = read_model_bytes(data, name)
        assert ir.inputs[0].dtype == "uint8" and len(ir.weights) == 2
        r = result(res, name)
        assert coded(r) == 2 and r.snr_db is not None  # checked in TFLM on uint8 samples
        xs = interpreter.generated_inputs(ir, 2)
        assert xs[0].dtype == np.uint8
        tflm_outputs(rebuilt[name], xs)


@needs_shared
def test_real_uint8_input_float_output_model(tmp_path):
    path = os.path.join(SHARED, "stm32ai-modelzoo", "ic_stmnist_v1_emnist_int8.tflite")
    ir = read_model(path)
    assert ir.inputs[0].dtype == "uint8" and ir.outputs[0].dtype == "float32"
    assert len(ir.weights) == 6
    res = compiler.build([path], BuildOptions(jobs=1, generated_samples=8))
    assert res.models[0].snr_db >= 20.0


# --------------------------------------------------------------------------- quantisation


def test_per_tensor_and_per_channel_weights(tmp_path):
    n = Net(5)
    x = n.act([1, 4, 4, 2])
    y = n.conv(n.conv(x, 4, per_channel=False), 3)  # per-tensor, then per-channel
    data = n.model([x], [y])
    w_tensor, w_channel = sorted(read_model_bytes(data, "q").weights, key=lambda w: w.scales.size)
    assert w_tensor.scales.size == 1 and w_channel.scales.size == 3
    assert np.all(channel_scales(w_tensor) == w_tensor.scales[0])
    per_el = channel_scales(w_channel).reshape(w_channel.shape)
    assert np.allclose(per_el[:, 0, 0, 0], w_channel.scales)  # along the output channels
    res, rebuilt = build(tmp_path, {"q": data}, mode="pq-m")
    assert coded(res.models[0]) == 2
    tflm_outputs(rebuilt["q"], interpreter.generated_inputs(read_model_bytes(data, "q"), 2))


@needs_shared
def test_real_per_tensor_model():
    ir = read_model(os.path.join(SHARED, "mlcommons-tiny", "ad01_int8.tflite"))
    assert len(ir.weights) == 10 and all(w.scales.size == 1 for w in ir.weights)
    w = ir.weights[0]
    assert np.all(channel_scales(w) == w.scales[0])


def test_quantized_dimension_quirks(tmp_path):
    # per-channel 1-D biases claiming quantized_dimension=3 (person_detect.tflite), and conv
    # weights [4,3,3,4] claiming axis 3: TFLM only checks that axis has as many entries as
    # there are output channels, then applies the scales per output channel (axis 0) anyway,
    # and so does yonoc
    n = Net(6)
    x = n.act([1, 4, 4, 4])
    y = n.conv(n.dwconv(n.conv(x, 4, bias_qdim=3, qdim=3)), 4, k=1, bias_qdim=3)
    data = n.model([x], [y])
    ws = read_model_bytes(data, "qd").weights
    c1 = next(w for w in ws if w.shape == (4, 3, 3, 4) and w.op_type == "CONV_2D")
    dw = next(w for w in ws if w.op_type == "DEPTHWISE_CONV_2D")
    assert (c1.quantized_dimension, dw.quantized_dimension) == (0, 3)
    assert np.allclose(channel_scales(c1).reshape(c1.shape)[:, 1, 1, 0], c1.scales)
    assert np.allclose(channel_scales(dw).reshape(dw.shape)[0, 1, 1, :], dw.scales)
    res, rebuilt = build(tmp_path, {"qd": data}, mode="pq-m")
    assert coded(res.models[0]) == 3 and res.models[0].snr_db is not None


@needs_shared
def test_real_quantized_dimension_quirk_person_detect():
    ir = read_model(os.path.join(SHARED, "tflite-micro", "person_detect.tflite"))
    assert len(ir.weights) == 28
    # the first layer: depthwise [1,3,3,8] on the grey channel, depth multiplier 8
    first = next(w for w in ir.weights if w.shape == (1, 3, 3, 8))
    assert first.op_type == "DEPTHWISE_CONV_2D"
    assert first.quantized_dimension == 3 and first.scales.size == 8
    for w in ir.weights:
        s = channel_scales(w)
        assert s.size == w.size and np.all(s > 0)


def test_uint8_weights_stay_raw():
    # legacy asymmetric uint8 quantisation: not int8, left as it is (TFLM cannot run it)
    n = Net(7)
    x = n.act([1, 4, 4, 2], TT.UINT8, 0.05, 128)
    w = n.weights((3, 3, 3, 2), dtype=TT.UINT8)
    y = n.conv(x, 3, w=w)
    assert read_model_bytes(n.model([x], [y]), "u8w").weights == []


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
    p = run_yonoc("build", path, "-o", tmp_path / "img.bin", "-q", check=False)  # no progress
    assert p.returncode == ModelError.exit_code
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert "vendor: the TFLM interpreter cannot run this model" in p.stderr
    assert "VendorFFT" in p.stderr and "--no-check" in p.stderr
    run_yonoc("build", path, "-o", tmp_path / "img.bin", "--no-check", "--mode", "pq-m")
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


# --------------------------------------------------------------------------- inputs


def test_model_with_several_inputs_gets_samples_for_each(tmp_path):
    n = Net(13)
    a, b = n.act([1, 4, 4, 2]), n.act([1, 4, 4, 2])
    s = n.op(OP.ADD, [a, b], [n.act([1, 4, 4, 2], scale=0.1)], BO.AddOptions, tfl.AddOptionsT())
    y = n.conv(s, 4)
    data = n.model([a, b], [y])
    ir = read_model_bytes(data, "two")
    xs = interpreter.generated_inputs(ir, 3)
    assert all(isinstance(x, tuple) and len(x) == 2 for x in xs)
    assert not np.array_equal(xs[0][0], xs[0][1])
    np.save(tmp_path / "two.sample.npy", np.zeros((2, 1, 4, 4, 2), np.int8))  # feeds input 0
    res, _ = build(tmp_path, {"two": data}, mode="pq-m")
    assert res.models[0].samples.startswith("2 real") and res.models[0].snr_db is not None


def test_model_without_inputs_needs_no_check(tmp_path):
    n = Net(14)
    x = n.const(n.rng.integers(-100, 100, (1, 8), dtype=np.int8), TT.INT8, Net.q(0.05))
    data = n.model([], [n.fc(x, 4)])
    with pytest.raises(YonocError, match="no inputs.*--no-check"):
        build(tmp_path, {"noin": data})
    res, _ = build(tmp_path, {"noin": data}, check=False)
    assert res.models[0].name == "noin"


def test_tiny_model_with_large_activations_runs_in_tflm(tmp_path):
    # TFLM's Python default arena (10x the model) is far too small for a 600-byte model with
    # 64x64 activations; yonoc sizes the arena from the tensors
    n = Net(15)
    x = n.act([1, 64, 64, 1])
    data = n.model([x], [n.conv(x, 1)])
    assert len(data) < 1000
    res, _ = build(tmp_path, {"big": data}, mode="pq-m")
    assert res.models[0].snr_db is not None and res.models[0].arena_size > 8192


# --------------------------------------------------------------------------- model lists


def test_duplicate_model_names_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    p1 = write(tmp_path / "a", "net", small_cnn())
    p2 = write(tmp_path / "b", "net", small_cnn(seed=1))
    for args in ((p1, p2), (p1, p1)):
        p = run_yonoc("build", *args, "-o", tmp_path / "img.bin", "--no-check", check=False)
        assert p.returncode == YonocError.exit_code
        assert "duplicate model name 'net'" in p.stderr and "rename one" in p.stderr
    assert not (tmp_path / "img.bin").exists()


def test_empty_model_list_is_refused(tmp_path):
    p = run_yonoc("build", "-o", tmp_path / "img.bin", check=False)
    assert p.returncode == YonocError.exit_code
    assert p.stderr.strip() == "yonoc: error: no input models given"
    with pytest.raises(YonocError, match="no input models"):
        compiler.build([], BuildOptions())

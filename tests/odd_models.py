"""Tiny odd models for the test_odd_*.py tests, built with TFLM's own `model_editor` (the
importing test module is skipped when tflite-micro's compression tools are absent), and the
in-process build helpers those tests share. Each is a valid model for the TFLM interpreter
wherever the policy is to compress or pass through."""

from __future__ import annotations

import numpy as np
import pytest

me = pytest.importorskip("tflite_micro.tensorflow.lite.micro.compression.model_editor")
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as tfl  # noqa: E402

from yonoc import compiler  # noqa: E402
from yonoc.backend import image_format as fmt  # noqa: E402
from yonoc.options import BuildOptions  # noqa: E402

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

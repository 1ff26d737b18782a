"""Odd models, by their types: float, hybrid, int16 activations, uint8 I/O and weights,
per-tensor and quantized-dimension quirks (docs/model-support.md).
Tiny models: tests/odd_models.py; (real) cases: ../shared/models, skipped when absent.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from odd_models import BO, OP, TT, Net, build, coded, result, small_cnn, tfl

from yonoc import compiler, interpreter
from yonoc.errors import ModelError
from yonoc.frontend import read_model, read_model_bytes
from yonoc.options import BuildOptions
from yonoc.passes.encode import channel_scales

from conftest import SHARED, needs_shared, tflm_outputs

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

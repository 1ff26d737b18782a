"""Every kernel shape of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED is PQ-coded (issue 9,
part 1): 3x3 in group A, everything else in group B (docs/image-format.md, "Groups")."""

from __future__ import annotations

import os

import numpy as np
import pytest

from yonoc.backend import image_format as fmt
from yonoc.frontend import read_model
from yonoc.frontend.tflite_reader import _classify
from yonoc.ir import Group, Layout

from conftest import EXAMPLES, QUICK, run_yonoc, shared_models, yonoc_in_process

A, B = Group.CONV3X3, Group.POINTWISE


@pytest.mark.parametrize(
    "op,shape,expected",
    [
        ("CONV_2D", (8, 3, 3, 4), (A, 9, 4)),
        ("CONV_2D", (8, 1, 1, 4), (B, 1, 1)),
        ("CONV_2D", (48, 3, 1, 6), (B, 3, 6)),  # 1-D conv along H
        ("CONV_2D", (48, 1, 5, 6), (B, 5, 6)),  # 1-D conv along W
        ("CONV_2D", (64, 10, 4, 1), (B, 40, 1)),
        ("CONV_2D", (64, 7, 7, 1), (B, 49, 1)),
        ("DEPTHWISE_CONV_2D", (1, 3, 3, 16), (A, 9, 16)),
        ("DEPTHWISE_CONV_2D", (1, 5, 5, 16), (B, 25, 16)),
        ("DEPTHWISE_CONV_2D", (1, 10, 1, 128), (B, 10, 128)),
        ("FULLY_CONNECTED", (10, 64), (B, 1, 1)),
        ("DEPTHWISE_CONV_2D", (2, 3, 3, 16), None),  # not a TFLite depthwise kernel
        ("FULLY_CONNECTED", (2, 3, 4), None),
        ("CONV_3D", (2, 3, 3, 3, 4), None),
    ],
)
def test_classification(op, shape, expected):
    assert _classify(op, shape) == expected


def test_imu_cnn1d_1d_kernels_are_weight_tensors():
    ir = read_model(os.path.join(EXAMPLES, "imu_cnn1d.tflite"))
    one_d = [w for w in ir.weights if w.op_type == "CONV_2D" and w.shape[1:3] == (3, 1)]
    assert len(one_d) == 4 and all(w.group == B and w.kernel_positions == 3 for w in one_d)
    assert sum(w.size for w in one_d) == 86880  # the bytes issue 9 found raw


def _kernel_major_roundtrip(w):
    v = w.vector_order()
    assert np.array_equal(w.from_vector_order(v), w.values.astype(np.float32))
    k = w.shape[1] * w.shape[2]
    # vector order walks [O, I, P]: the first k values are kernel 0's taps for channel 0
    assert np.array_equal(v[:k], w.values.reshape(w.shape[0], k, -1)[0, :, 0])


def test_kernel_major_walks_non_square_kernels_spatially():
    from yonoc.ir import replace

    ir = read_model(os.path.join(EXAMPLES, "imu_cnn1d.tflite"))
    w = next(w for w in ir.weights if w.shape == (64, 3, 1, 48))
    _kernel_major_roundtrip(replace(w, layout=Layout.KERNEL_MAJOR))


def test_imu_cnn1d_image_codes_its_1d_kernels_and_rebuilds_exactly(tmp_path):
    model = os.path.join(EXAMPLES, "imu_cnn1d.tflite")
    out = tmp_path / "imu.yono"
    yonoc_in_process("build", model, "-o", out, "--mode", "pq-m", *QUICK, "-j", "1")
    image = fmt.read_image(out.read_bytes())
    ir = read_model(model)
    pq = {f.dst_offset for f in image.tasks[0].fills if f.kind == fmt.FillKind.PQ}
    one_d = [w.offset for w in ir.weights if w.shape[1:3] == (3, 1)]
    assert one_d and set(one_d) <= pq
    # the rebuilt model is what extract writes, byte for byte
    run_yonoc("extract", out, "-o", tmp_path / "x")
    assert (tmp_path / "x" / "imu_cnn1d.tflite").read_bytes() == fmt.rebuild(image, 0)


@pytest.mark.skipif(not shared_models(), reason="../shared/models not present")
def test_shared_models_odd_kernels_are_weight_tensors():
    odd = 0
    for path in shared_models():
        for w in read_model(path).weights:
            if w.op_type != "FULLY_CONNECTED" and w.shape[1:3] not in ((3, 3), (1, 1)):
                assert w.group == B and w.kernel_positions == w.shape[1] * w.shape[2]
                odd += 1
    assert odd >= 10  # 1-D, 10x4, 7x7, 4x3, depthwise 5x1/10x1/15x1/10x8 kernels

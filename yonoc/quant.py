"""Affine int quantisation helpers, one copy for every stage (frontend, passes, lift, samples).

TFLite stores real = (q - zero_point) * scale, per tensor or per channel along one axis. Files
in the wild put `quantized_dimension` on the wrong axis now and then; TFLM's kernels apply the
scales to the channel axis whatever the field says, so the axis is found by size here too.
"""

from __future__ import annotations

import numpy as np

INT_TYPES = ("int8", "uint8", "int16")  # activation types TFLM quantises affinely


def channel_axis(shape: tuple[int, ...], channels: int, quantized_dimension: int) -> int | None:
    """The axis `channels` per-channel scales apply to; None if no axis has that size."""
    axis = quantized_dimension if 0 <= quantized_dimension < len(shape) else 0
    if len(shape) and shape[axis] == channels:
        return axis
    matches = [a for a, d in enumerate(shape) if d == channels]
    return matches[0] if matches else None


def channel_view(
    values: np.ndarray, shape: tuple[int, ...], quantized_dimension: int
) -> np.ndarray:
    """Per-channel `values` (scales or zero points) reshaped to broadcast against `shape`.

    One value broadcasts as it is; values that fit no axis fall back to their mean (such a file
    cannot be run exactly anyway, and the mean keeps error estimates finite). The dtype stays.
    """
    values = np.asarray(values)
    ndim = len(shape)
    if values.size == 0:  # not quantised: unit scale
        return np.ones([1] * ndim, values.dtype)
    if values.size == 1:
        return values.reshape([1] * ndim)
    axis = channel_axis(shape, values.size, quantized_dimension)
    if axis is None:
        return np.full([1] * ndim, np.mean(values), values.dtype)
    bshape = [1] * ndim
    bshape[axis] = values.size
    return values.reshape(bshape)


def element_scales(
    shape: tuple[int, ...], scales: np.ndarray, quantized_dimension: int
) -> np.ndarray:
    """The real scale of every element, flat in file order (float32)."""
    scales = np.asarray(scales)
    if scales.size == 0:
        return np.ones(int(np.prod(shape, dtype=np.int64)), np.float32)
    view = channel_view(scales, shape, quantized_dimension)
    return np.broadcast_to(view, shape).reshape(-1).astype(np.float32)


def dequantize(values: np.ndarray, scale, zero_point) -> np.ndarray:
    """Integer values -> real (float64); floats (and unquantised tensors) pass through."""
    values = np.asarray(values)
    if values.dtype.kind in "iu" and np.any(np.asarray(scale) != 0):
        return (values.astype(np.float64) - zero_point) * scale
    return values.astype(np.float64)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """Real values -> `dtype` as TFLM's QUANTIZE would (round, clip); other inputs are cast."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and dtype in INT_TYPES and scale:
        lim = np.iinfo(dtype)
        x = np.clip(np.round(x / scale + zero_point), lim.min, lim.max)
    return x.astype(dtype)

"""Sample inputs for fidelity checks: user-supplied .npy files, else generated ones."""

from __future__ import annotations

import os

import numpy as np

from .errors import YonocError
from .interpreter import generated_inputs
from .ir import ModelIR

SAMPLE_SUFFIX = ".sample.npy"


def find_sample_files(model: ModelIR, explicit: dict) -> list:
    """Explicit --samples NAME=FILE (any number), else `<model>.sample.npy` beside the model."""
    if model.name in explicit:
        return list(explicit[model.name])
    beside = os.path.splitext(model.path)[0] + SAMPLE_SUFFIX
    return [beside] if os.path.isfile(beside) else []


def load_samples(model: ModelIR, path: str, limit: int) -> list:
    info = model.inputs[0]
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:
        raise YonocError(f"{path}: cannot read samples ({type(e).__name__})") from None
    shape = tuple(info.shape)
    per_sample = int(np.prod(shape))
    if arr.size == 0 or arr.size % per_sample:
        raise YonocError(f"{path}: {arr.shape} does not hold whole inputs of shape {shape} "
                         f"for model {model.name}")
    arr = arr.reshape((-1,) + shape)[:limit]
    if arr.dtype != np.dtype(info.dtype):
        if arr.dtype.kind == "f" and info.dtype in ("int8", "uint8", "int16") and info.scale:
            q = np.round(arr / info.scale + info.zero_point)
            lim = np.iinfo(info.dtype)
            arr = np.clip(q, lim.min, lim.max)
        arr = arr.astype(info.dtype)
    return [a for a in arr]


def samples_for(model: ModelIR, explicit: dict, generated: int, limit: int):
    """(samples, number of real ones first) for one model.

    Generated inputs are always added: a handful of real samples alone is too few to estimate
    an SNR that holds on inputs the build never saw. Samples of a model with several inputs
    are tuples (see `interpreter.generated_inputs`); real ones feed input 0.
    """
    if not model.inputs:
        raise YonocError(f"{model.name}: model has no inputs to check it with; build with "
                         "--no-check to store it without the TFLM fidelity check")
    real = [x for path in find_sample_files(model, explicit)
            for x in load_samples(model, path, limit)][:limit]
    if real and len(model.inputs) > 1:  # real samples feed input 0; generated ones the rest
        real = [(x,) + extra[1:] for x, extra in zip(real, generated_inputs(model, len(real), 1))]
    return real + generated_inputs(model, generated), len(real)

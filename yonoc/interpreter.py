"""Run models in the real TFLM interpreter (the `tflite-micro` Python package).

Fidelity is always judged on the int8 path TFLM executes, never on a float approximation.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from .errors import MissingDependencyError, ModelError
from .ir import ModelIR, TensorInfo


def _runtime():
    try:
        import tflite_micro
    except ImportError:
        raise MissingDependencyError(
            "the TFLM interpreter is needed for fidelity checks: pip install tflite-micro "
            "(or build with --no-check)") from None
    return tflite_micro.runtime


@contextlib.contextmanager
def _quiet_stderr():
    """TFLM prints allocation failures on fd 2; keep the CLI's one-line errors clean."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


def make_interpreter(model: bytes, arena_size: int | None = None):
    rt = _runtime()
    with _quiet_stderr():
        return rt.Interpreter.from_bytes(model, arena_size=arena_size)


def run(model: bytes, inputs: list, n_outputs: int = 1, name: str = "model") -> list:
    """Outputs (per sample, a list per output tensor) of a single-input model."""
    try:
        interp = make_interpreter(model)
        results = []
        for x in inputs:
            interp.reset()
            interp.set_input(x, 0)
            with _quiet_stderr():
                interp.invoke()
            results.append([np.array(interp.get_output(k)) for k in range(n_outputs)])
        return results
    except (RuntimeError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"{name}: the TFLM interpreter cannot run this model ({msg})") from None


def measure_arena(model: bytes, sample) -> int:
    """Tensor arena bytes the model used in TFLM (RecordingMicroAllocator), 16-byte rounded.

    Read from TFLM's own allocation record rather than by probing smaller arenas: TFLM's
    failure path on a too-small arena is not safe to exercise in-process. Measured on a 64-bit
    host with reference kernels: TFLM's structures hold pointers, so a 32-bit MCU needs no more
    for them; optimised kernels (CMSIS-NN) may ask for extra scratch, see docs/runtime.md.
    """
    import re
    import tempfile

    interp = make_interpreter(model)
    interp.set_input(sample, 0)
    with _quiet_stderr():
        interp.invoke()
    with tempfile.TemporaryFile() as log:
        saved = [os.dup(1), os.dup(2)]
        try:
            for fd in (1, 2):
                os.dup2(log.fileno(), fd)
            interp.print_allocations()
        finally:
            for fd, s in zip((1, 2), saved):
                os.dup2(s, fd)
                os.close(s)
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    m = re.search(r"Arena allocation total (\d+) bytes", text)
    return (int(m.group(1)) + 15) // 16 * 16 if m else 0


def dequantize(values: np.ndarray, info: TensorInfo) -> np.ndarray:
    if values.dtype.kind in "iu" and info.scale:
        return (values.astype(np.float64) - info.zero_point) * info.scale
    return values.astype(np.float64)


def generated_inputs(model: ModelIR, count: int, seed: int = 0) -> list:
    """Deterministic inputs over the input's range: half white noise, half smooth noise.

    Smooth inputs look more like images, spectrograms and motion than white noise does, so
    they exercise the models' real operating range better; neither proves accuracy.
    """
    info = model.inputs[0]
    rng = np.random.default_rng(seed)
    shape = tuple(info.shape)
    if info.dtype in ("int8", "uint8", "int16"):
        lo, hi = np.iinfo(info.dtype).min, np.iinfo(info.dtype).max
    elif model.float_input_range:
        lo, hi = model.float_input_range
    else:
        lo, hi = -1.0, 1.0
    out = []
    for k in range(count):
        u = rng.random(shape)
        if k % 2:
            u = _smooth(u)
        x = lo + u * (hi - lo)
        if info.dtype in ("int8", "uint8", "int16"):
            x = np.clip(np.round(x), lo, hi)
        out.append(x.astype(info.dtype))
    return out


def _smooth(u: np.ndarray) -> np.ndarray:
    from scipy.ndimage import uniform_filter
    sq = [d for d in u.shape]
    size = [max(1, d // 8) if d > 1 else 1 for d in sq]
    v = uniform_filter(u, size=size, mode="reflect")
    lo, hi = v.min(), v.max()
    return (v - lo) / (hi - lo) if hi > lo else v

"""Run models in the real TFLM interpreter (the `tflite-micro` Python package).

Fidelity is always judged on the int8 path TFLM executes, never on a float approximation.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np
import tflite

from . import quant
from .errors import MissingDependencyError, ModelError
from .ir import ModelIR, TensorInfo

_ITEM_BYTES = {
    tflite.TensorType.FLOAT32: 4,
    tflite.TensorType.FLOAT16: 2,
    tflite.TensorType.INT32: 4,
    tflite.TensorType.UINT8: 1,
    tflite.TensorType.INT64: 8,
    tflite.TensorType.BOOL: 1,
    tflite.TensorType.INT16: 2,
    tflite.TensorType.INT8: 1,
    tflite.TensorType.UINT32: 4,
    tflite.TensorType.UINT16: 2,
}


def _runtime():
    try:
        import tflite_micro
    except ImportError:
        raise MissingDependencyError(
            "the TFLM interpreter is needed for fidelity checks: pip install tflite-micro "
            "(or build with --no-check)"
        ) from None
    rt = tflite_micro.runtime
    if getattr(rt, "count_resource_variables", None) not in (None, _count_resource_variables):
        rt.count_resource_variables = _count_resource_variables
    return rt


def _count_resource_variables(model) -> int:
    """What tflite_micro's own count_resource_variables returns (unique VAR_HANDLE shared names),
    read through the flatbuffer's accessors. Its version unpacks the whole model with the
    object API in Python first: 15-70 ms per interpreter for a few hundred KB, on every one of
    the hundreds of interpreters a fidelity search or an arena bisection creates."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    m = fb.Model.GetRootAsModel(model, 0)
    codes = [m.OperatorCodes(i) for i in range(m.OperatorCodesLength())]
    builtin = [max(c.BuiltinCode(), c.DeprecatedBuiltinCode()) for c in codes]
    names = set()
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        for o in range(sg.OperatorsLength()):
            op = sg.Operators(o)
            if builtin[op.OpcodeIndex()] != fb.BuiltinOperator.VAR_HANDLE:
                continue
            table = op.BuiltinOptions()
            opts = fb.VarHandleOptions()
            opts.Init(table.Bytes, table.Pos)
            names.add(opts.SharedName())
    return len(names)


@contextlib.contextmanager
def _quiet_stderr(capture: list | None = None):
    """TFLM prints allocation failures on fd 2; keep the CLI's one-line errors clean. What it
    printed is appended to `capture` (if given) so an error can say why."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as log:
        try:
            os.dup2(log.fileno(), 2)
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)
            if capture is not None:
                log.seek(0)
                capture.append(log.read(4096).decode("utf-8", "replace"))


def arena_bound(model: bytes) -> int:
    """A tensor arena TFLM certainly fits the model in on the host: its own heuristic (10x the
    model size) is too small for tiny models with large activations, so add every non-constant
    tensor of every subgraph (no reuse assumed) twice (scratch buffers) and 64 KiB."""
    total = 0
    try:
        m = tflite.Model.GetRootAsModel(model, 0)
        for sgi in range(m.SubgraphsLength()):
            sg = m.Subgraphs(sgi)
            for ti in range(sg.TensorsLength()):
                t = sg.Tensors(ti)
                buf = m.Buffers(t.Buffer())
                if buf is not None and (buf.DataLength() or buf.Offset() > 1):
                    continue
                n = int(np.prod(np.maximum(t.ShapeAsNumpy(), 1))) if t.ShapeLength() else 1
                total += n * _ITEM_BYTES.get(t.Type(), 8)
    except Exception:  # garbage: let TFLM report it
        total = 0
    return 10 * len(model) + 2 * total + 65536


def _custom_ops(model: bytes) -> list:
    try:
        m = tflite.Model.GetRootAsModel(model, 0)
        return sorted(
            {
                (m.OperatorCodes(i).CustomCode() or b"").decode("utf-8", "replace")
                for i in range(m.OperatorCodesLength())
            }
            - {""}
        )
    except Exception:
        return []


def _cannot_run(name: str, model: bytes, error: Exception, stderr: list) -> ModelError:
    lines = [ln.strip() for ln in "".join(stderr).splitlines() if ln.strip()]
    why = (
        lines[0] if lines else (str(error).splitlines()[0] if str(error) else type(error).__name__)
    )
    why = why.rstrip(".")
    if "CUSTOM" in why and _custom_ops(model):
        why += f" ({', '.join(_custom_ops(model))})"
    return ModelError(
        f"{name}: the TFLM interpreter cannot run this model: {why}; build with "
        "--no-check to store it without the TFLM fidelity check"
    )


def make_interpreter(model: bytes, arena_size: int | None = None):
    rt = _runtime()
    with _quiet_stderr():
        return rt.Interpreter.from_bytes(model, arena_size=arena_size or arena_bound(model))


def _set_inputs(interp, sample) -> None:
    """A sample is one array (input 0) or a tuple of arrays (one per model input)."""
    for k, x in enumerate(sample if isinstance(sample, tuple) else (sample,)):
        interp.set_input(x, k)


def run(model: bytes, inputs: list, n_outputs: int = 1, name: str = "model") -> list:
    """Outputs (per sample, a list per output tensor); samples as in `_set_inputs`."""
    stderr: list = []
    rt = _runtime()
    try:
        with _quiet_stderr(stderr):
            interp = rt.Interpreter.from_bytes(model, arena_size=arena_bound(model))
            results = []
            for x in inputs:
                interp.reset()
                _set_inputs(interp, x)
                interp.invoke()
                results.append([np.array(interp.get_output(k)) for k in range(n_outputs)])
        return results
    except (RuntimeError, ValueError) as e:
        raise _cannot_run(name, model, e, stderr) from None


def tflm_available() -> bool:
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        return False
    return True


def measure_arena(model: bytes, sample=None, name: str = "a model") -> int:
    """The tensor arena yonoc emits for a model: the smallest arena TFLM's allocation succeeds
    in (bisection, each probe in a worker process: yonoc/arena.py) plus the margin for kernel
    libraries (yonoc/arena_margin.py, docs/arena.md), 16-byte rounded. 0 when tflite-micro is
    not installed or cannot run the model. `sample` is unused (allocation needs no input)."""
    if not tflm_available():
        return 0
    from . import arena

    size = arena.measure(model).size
    if not size:
        import logging

        logging.getLogger("yonoc").warning(
            "%s: TFLM's interpreter cannot allocate it at any size, so its tensor arena is not "
            "measured (0 in the image)",
            name,
        )
    return size


def dequantize(values: np.ndarray, info: TensorInfo) -> np.ndarray:
    return quant.dequantize(values, info.scale, info.zero_point)


def generated_inputs(model: ModelIR, count: int, seed: int = 0) -> list:
    """Deterministic inputs over the input's range: half white noise, half smooth noise.

    Smooth inputs look more like images, spectrograms and motion than white noise does, so
    they exercise the models' real operating range better; neither proves accuracy. A model
    with several inputs gets tuples (one array per input).
    """
    rng = np.random.default_rng(seed)
    per_input = [
        _generated(info, model.float_input_range if k == 0 else None, count, rng)
        for k, info in enumerate(model.inputs)
    ]
    if len(per_input) == 1:
        return per_input[0]
    return [tuple(xs) for xs in zip(*per_input)]


def _generated(info: TensorInfo, float_range, count: int, rng) -> list:
    shape = tuple(info.shape)
    if info.dtype in ("int8", "uint8", "int16"):
        lo, hi = np.iinfo(info.dtype).min, np.iinfo(info.dtype).max
    elif float_range:
        lo, hi = float_range
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

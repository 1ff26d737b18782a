"""Model inputs from files: samples for fidelity checks (user-supplied .npy files, else
generated ones) and a build spec's training and test data."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import quant
from .errors import YonocError
from .interpreter import generated_inputs
from .ir import ModelIR

if TYPE_CHECKING:
    from .options import BuildOptions

log = logging.getLogger("yonoc")

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
        if isinstance(arr, np.lib.npyio.NpzFile):  # an .npz of data: its inputs `x`
            with arr:
                if "x" not in arr.files:
                    raise YonocError(
                        f"{path}: an .npz of samples needs an array 'x' (has "
                        f"{', '.join(arr.files) or 'none'})"
                    )
                arr = np.asarray(arr["x"])
    except YonocError:
        raise
    except Exception as e:
        raise YonocError(f"{path}: cannot read samples ({type(e).__name__})") from None
    if arr.dtype.kind not in "fiub":
        raise YonocError(f"{path}: samples must be numeric, not {arr.dtype}")
    shape = tuple(info.shape)
    per_sample = int(np.prod(shape))
    if arr.size == 0 or arr.size % per_sample:
        raise YonocError(
            f"{path}: {arr.shape} does not hold whole inputs of shape {shape} "
            f"for model {model.name}"
        )
    arr = arr.reshape((-1,) + shape)[:limit]
    if arr.dtype != np.dtype(info.dtype):
        arr = quant.quantize(arr, info.scale, info.zero_point, info.dtype)
    return [a for a in arr]


def samples_for(model: ModelIR, explicit: dict, generated: int, limit: int):
    """(samples, number of real ones first) for one model.

    Generated inputs are always added: a handful of real samples alone is too few to estimate
    an SNR that holds on inputs the build never saw. Samples of a model with several inputs
    are tuples (see `interpreter.generated_inputs`); real ones feed input 0.
    """
    if not model.inputs:
        raise YonocError(
            f"{model.name}: model has no inputs to check it with; build with "
            "--no-check to store it without the TFLM fidelity check"
        )
    real = [
        x for path in find_sample_files(model, explicit) for x in load_samples(model, path, limit)
    ][:limit]
    if real and len(model.inputs) > 1:  # real samples feed input 0; generated ones the rest
        real = [(x,) + extra[1:] for x, extra in zip(real, generated_inputs(model, len(real), 1))]
    return real + generated_inputs(model, generated), len(real)


# --- training and test data of a build spec (Algorithm 1, passes/em.py)


@dataclass(frozen=True)
class DataSpec:
    """Where one model's data lives (from a build spec); loaded by `load_data`.

    `train`, `val` and `test`: .npz files with float32 `x` (model's float input domain) and
    int64 `y`. `val` judges epsilon and every build decision; `test` is only reported, so a
    build cannot fit its own measurement. Labelled data without `val`: the test set is split
    (seeded, half each) and the build says so. Without labels (`y` absent, or `inputs` =
    .npy/.npz of unlabelled inputs) the model is finetuned by distillation and judged on
    fidelity; without `test`, the last quarter of the (unlabelled) inputs is held out.
    """

    train: str | None = None
    test: str | None = None
    inputs: str | None = None
    epsilon: float | None = None
    val: str | None = None


@dataclass
class ModelData:
    """Data for one model: labelled train/test (accuracy mode) or unlabelled (distillation)."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    epsilon: float | None = None  # per-model override of EMOptions.epsilon
    # validation data: what the build decides on; None: decide on (x_test, y_test) (direct
    # callers and distillation); with val, test is reported only
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    split: str = ""  # how val was made when the spec gave none ("" = given or not needed)

    @property
    def labelled(self) -> bool:
        return self.y_train is not None and self.y_test is not None

    def decide(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The data every build decision is judged on."""
        return (self.x_test, self.y_test) if self.x_val is None else (self.x_val, self.y_val)

    @property
    def reports_test(self) -> bool:
        """Held-out test data apart from the decision data (reported only)."""
        return self.x_val is not None and self.labelled


VAL_SPLIT_SEED = 0


def split_val(x: np.ndarray, y: np.ndarray, seed: int = VAL_SPLIT_SEED):
    """(x_val, y_val, x_test, y_test): a seeded half/half split of a labelled test set,
    stratified by label so both halves keep the class mix."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        val[idx[: (len(idx) + 1) // 2]] = True
    if val.all() or not val.any():  # one example: nothing to split
        return x, y, x, y
    return x[val], y[val], x[~val], y[~val]


def model_inputs(model: ModelIR, x: np.ndarray) -> list[np.ndarray]:
    """Float inputs (model's float domain) -> what TFLM takes (quantised like sample files)."""
    info = model.inputs[0]
    x = np.asarray(x).reshape((-1,) + tuple(info.shape))
    return list(quant.quantize(x, info.scale or 1.0, info.zero_point, info.dtype))


def float_inputs(model: ModelIR, x: np.ndarray) -> np.ndarray:
    """Inputs as the finetune hook takes them: float32 in the model's float input domain
    (integer arrays are taken as already quantised and dequantised here)."""
    info = model.inputs[0]
    return quant.dequantize(x, info.scale, info.zero_point).astype(np.float32)


def load_npz(path: str, need_labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(x float32, y int64 or None) from an .npz with `x` (and `y`) or an .npy of inputs."""
    try:
        if path.endswith(".npy"):
            x, y = np.load(path, allow_pickle=False), None
        else:
            with np.load(path, allow_pickle=False) as z:
                x = np.asarray(z["x"])
                y = np.asarray(z["y"]) if "y" in z.files else None
    except FileNotFoundError:
        raise YonocError(f"{path}: no such data file") from None
    except KeyError:
        raise YonocError(
            f"{path}: an .npz data file needs an array 'x' (and 'y' for labels)"
        ) from None
    except Exception as e:
        raise YonocError(f"{path}: cannot read data ({type(e).__name__})") from None
    if need_labels and y is None:
        raise YonocError(f"{path}: labels 'y' are needed here")
    if y is not None:
        y = y.astype(np.int64).reshape(-1)
        if len(y) != len(x):
            raise YonocError(f"{path}: {len(x)} inputs but {len(y)} labels")
    if x.dtype.kind not in "fiu":
        raise YonocError(f"{path}: inputs must be numeric")
    return x.astype(np.float32) if x.dtype.kind == "f" else x, y


def check_data_shape(model: ModelIR, x: np.ndarray, path: str) -> np.ndarray:
    shape = tuple(model.inputs[0].shape)
    per = int(np.prod(shape))
    if x.size == 0 or x.size % per or x.size // per != len(x):
        raise YonocError(
            f"{path}: inputs of shape {x.shape} do not fit model {model.name} input {shape}"
        )
    return x.reshape((len(x),) + (shape[1:] if shape and shape[0] == 1 else shape))


def load_data(model: ModelIR, spec: DataSpec) -> ModelData:
    """Read a DataSpec's files for `model` and check they fit its input."""
    if spec.train and spec.inputs:
        raise YonocError(f"{model.name}: give either train (labelled) or inputs (unlabelled)")
    src = spec.train or spec.inputs
    if not src:
        raise YonocError(f"{model.name}: data needs train = ... or inputs = ...")
    x, y = load_npz(src)
    x = check_data_shape(model, x, src)
    if spec.inputs:
        y = None
    if spec.test:
        xt, yt = load_npz(spec.test)
        xt = check_data_shape(model, xt, spec.test)
    else:
        if y is not None:
            raise YonocError(f"{model.name}: labelled training data needs test = ... too")
        cut = max(1, len(x) * 3 // 4) if len(x) > 1 else len(x)
        x, xt, yt = x[:cut], x[cut:] if cut < len(x) else x, None
    if y is None:
        yt = None  # distillation is judged on fidelity even if test labels exist
        return ModelData(x, y, xt, yt, spec.epsilon)
    if spec.val:
        xv, yv = load_npz(spec.val, need_labels=True)
        xv = check_data_shape(model, xv, spec.val)
        return ModelData(x, y, xt, yt, spec.epsilon, xv, yv)
    if yt is None:  # unlabelled test data: judged on fidelity (em.py), nothing to split
        return ModelData(x, y, xt, yt, spec.epsilon)
    xv, yv, xt, yt = split_val(xt, yt)
    split = (
        f"no val data: test split (seed {VAL_SPLIT_SEED}) into {len(yv)} val (decisions) "
        f"+ {len(yt)} test (reported)"
    )
    return ModelData(x, y, xt, yt, spec.epsilon, xv, yv, split)


def check_inputs(models: list, explicit: dict, options: BuildOptions) -> None:
    """What can be checked before the long work: sample files, labels, mode/data mismatches."""
    if options.check:
        for m in models:
            for path in find_sample_files(m, explicit):
                load_samples(m, path, options.max_samples)
    else:
        log.warning("--no-check: fidelity is not measured; models may be far below the target")
    data = dict(options.data)
    for m in models:
        if m.name in data:
            check_labels(m, data[m.name])
        elif options.mode == "pq-mopt":
            log.warning(
                "%s: pq-mopt without data (train/inputs in a --spec) behaves like pq-m: "
                "every weight coded, no finetuning",
                m.name,
            )


def check_labels(m, ds) -> None:
    """Labels must name one of the model's classes: out-of-range labels would give 0 % for
    the original and the rebuilt model alike, and a target 'met'."""
    if not m.outputs:
        return
    classes = int(m.outputs[0].shape[-1]) if m.outputs[0].shape else 1
    top = 1 if classes == 1 else classes - 1  # one sigmoid output: labels 0/1
    for path in (ds.train, ds.val, ds.test):
        if not path:
            continue
        _, y = load_npz(path)
        if y is None or not len(y):
            continue
        bad = y[(y < 0) | (y > top)]
        if len(bad):
            raise YonocError(
                f"{path}: label {int(bad[0])} is not a class of model {m.name} "
                f"({classes} output{'s' if classes > 1 else ''}: labels 0..{top})"
            )

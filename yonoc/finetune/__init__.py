"""Pluggable finetuning for Algorithm 1 (the EM loop in `yonoc.passes.em`).

A *finetune hook* is any callable with this signature (see `FinetuneHook`)::

    hook(model, trainable, weights, data) -> FinetuneResult | {layer index: float weights}

- `model`: the original `ModelIR` (graph, quantisation, original bytes in `model.data`; the
  original model is also the teacher when `data.y` is None);
- `trainable`: indices into `model.weights` of the layers to train (the set S); every other
  layer must be treated as frozen;
- `weights`: the current float weights of *every* layer, index-aligned with `model.weights`,
  in the tensor's shape and real domain (int8 value x per-channel scale): codebook
  reconstructions for the frozen layers, the latest finetuned values for the layers in S;
- `data`: a `FinetuneData` (training inputs in the model's float input domain, labels or None,
  current biases of previously finetuned layers, and training knobs).

It returns new float weights for (some of) the trainable layers, and optionally their biases
(`FinetuneResult.biases`, float, real domain; with `data.frozen_biases`, biases of any layer).
The compiler re-quantises returned weights to int8 with each tensor's existing per-channel
scales (clipped to [-127, 127]) and biases to int32 (scale = input scale x weight scale),
stores those layers raw, and measures accuracy in TFLM. A hook sees at most copies of the
codewords (`data.coded`, E-step), so it cannot change the codebooks.

Choose a hook with `yonoc build --finetune module:callable` (a class is instantiated without
arguments), by the name of a `yonoc.finetune` entry point, or `torch` (the default): the
reference PyTorch hook in `yonoc.finetune.torch_hook` (extra: pip install 'yonoc[torch]').
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import YonocError
from ..ir import ModelIR

ENTRY_POINT_GROUP = "yonoc.finetune"
DEFAULT_HOOK = "torch"


@dataclass(frozen=True)
class CodedLayer:
    """A layer trained *through* its codebook (the EM loop's E-step): the forward pass uses the
    nearest codeword reconstruction of the layer's float (shadow) weights, gradients pass
    straight through to them. Codewords are copies in the int8 value domain, read-only.
    """

    subs: tuple[np.ndarray, ...]  # M arrays [K, s] (sub-codebook j: sub-vectors j, j + M, ...)
    subvector_len: int
    permutation: np.ndarray | None = None  # file-order positions in vector order
    # a residual (two-stage) rate: the base stage's codewords; this stage codes what the base
    # leaves, and the sum saturates to [-128, 127] as the firmware adds (PQCodebook.decode)
    base: CodedLayer | None = None


@dataclass(frozen=True, kw_only=True)
class Training:
    """The training knobs and their defaults, one set for the EM pass (`EMOptions`) and every
    hook call (`FinetuneData`)."""

    epochs: int = 16  # 8 needed 5 layers raw on digits_resnet, 16 only first/last
    batch_size: int = 64
    lr: float = 0.05  # Adam step, in int8 steps (LSB) of each weight / output LSB of a bias
    seed: int = 0
    # auto | ce | bce | kl | mse | ce+kl (labels' cross-entropy plus distillation from the
    # original model, KL on temperature-softened logits)
    loss: str = "auto"
    train_biases: bool = True  # also train the biases of the trainable layers
    # also train the biases of the frozen layers: biases are stored raw whatever the weights'
    # encoding, so correcting a PQ-coded layer's bias costs no image bytes; with init
    # "original" it took digits_resnet from 5 raw layers to first/last only
    # (docs/paper-tables.md)
    frozen_biases: bool = True
    # early stopping: stop after this many epochs without a lower loss on the validation data
    # (`FinetuneData.x_val`) and keep the best epoch's weights; 0: off, every epoch runs
    patience: int = 0
    # where the torch hook trains: "cpu" (default: the same image on every machine), "cuda",
    # "cuda:N", or "auto" (cuda when torch sees one, else cpu); cuda absent is an error
    device: str = "cpu"


@dataclass(frozen=True)
class FinetuneData(Training):
    """What a hook trains on, and how."""

    x: np.ndarray  # float32 inputs in the model's float input domain, [N, ...]
    y: np.ndarray | None  # int64 labels [N]; None: distil from the original model (teacher)
    biases: Mapping[int, np.ndarray] = field(default_factory=dict)  # current float biases
    temperature: float = 2.0  # distillation softening
    # validation inputs/labels for early stopping (`patience`); None: no early stopping
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    # {layer index: CodedLayer} for trainable layers whose forward weights must stay on the
    # codebook (E-step); a hook that ignores it trains them raw, which only weakens the E-step
    coded: Mapping[int, CodedLayer] = field(default_factory=dict)


@dataclass
class FinetuneResult:
    weights: dict[int, np.ndarray]  # {layer index: float array, tensor shape}
    biases: dict[int, np.ndarray] = field(default_factory=dict)  # float [out channels]


@runtime_checkable
class FinetuneHook(Protocol):
    def __call__(
        self,
        model: ModelIR,
        trainable: Sequence[int],
        weights: Sequence[np.ndarray],
        data: FinetuneData,
    ) -> FinetuneResult | Mapping[int, np.ndarray]: ...


def load_hook(name: str | None) -> FinetuneHook:
    """`module:callable`, an entry point name of group `yonoc.finetune`, or `torch`."""
    name = name or DEFAULT_HOOK
    if name == DEFAULT_HOOK:
        from .torch_hook import TorchFinetune

        return TorchFinetune()
    if ":" in name:
        mod_name, _, attr = name.partition(":")
        try:
            obj = importlib.import_module(mod_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except ImportError as e:
            raise YonocError(f"--finetune {name}: cannot import {mod_name} ({e})") from None
        except AttributeError:
            raise YonocError(f"--finetune {name}: {mod_name} has no {attr}") from None
    else:
        from importlib.metadata import entry_points

        eps = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not eps:
            raise YonocError(
                f"--finetune {name}: no such hook (use module:callable, an entry "
                f"point of group {ENTRY_POINT_GROUP}, or {DEFAULT_HOOK})"
            )
        obj = eps[0].load()
    if isinstance(obj, type):
        obj = obj()
    if not callable(obj):
        raise YonocError(f"--finetune {name}: not callable")
    return obj


def call_hook(
    hook: FinetuneHook,
    model: ModelIR,
    trainable: Sequence[int],
    weights: Sequence[np.ndarray],
    data: FinetuneData,
) -> FinetuneResult:
    """Call a hook and check what it returns: shapes, finiteness, only trainable layers."""
    out = hook(model, list(trainable), list(weights), data)
    if isinstance(out, FinetuneResult):
        res = out
    elif isinstance(out, Mapping):
        res = FinetuneResult(dict(out))
    else:
        raise YonocError(
            f"{model.name}: finetune hook returned {type(out).__name__}, expected "
            "FinetuneResult or a mapping of layer index to weights"
        )
    allowed = {
        "weights": set(trainable),
        "biases": set(range(len(model.weights))) if data.frozen_biases else set(trainable),
    }
    for kind, d in (("weights", res.weights), ("biases", res.biases)):
        for i, a in d.items():
            if i not in allowed[kind]:
                raise YonocError(
                    f"{model.name}: finetune hook returned {kind} for frozen layer {i}"
                )
            a = np.asarray(a, np.float64)
            if kind == "weights" and a.size != model.weights[i].size:
                raise YonocError(
                    f"{model.name}: finetune hook returned {a.size} weights for "
                    f"layer {i} of {model.weights[i].size}"
                )
            if not np.all(np.isfinite(a)):
                raise YonocError(
                    f"{model.name}: finetune hook returned non-finite {kind} for layer {i}"
                )
            d[i] = a
    return res

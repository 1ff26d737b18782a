"""The IR: plain dataclasses and numpy arrays, one `ModelIR` per input .tflite.

The frontend fills it, passes read it and attach encodings, the backend turns it into image
sections. Weight tensors keep their location in the original file so that the backend can cut
them out and the rebuilt flatbuffer keeps the original layout byte for byte.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np


class Group(IntEnum):
    """Which shared codebook pair a weight tensor is encoded with (paper §2.3)."""

    CONV3X3 = 0  # W1: 3x3 CONV_2D and 3x3 DEPTHWISE_CONV_2D kernels
    POINTWISE = 1  # W2: 1x1 CONV_2D and FULLY_CONNECTED matrices, and every other kernel shape


class Layout(IntEnum):
    """How a tensor's bytes are walked into vectors (docs/image-format.md, PQ layout)."""

    LINEAR = 0
    KERNEL_MAJOR = 1  # [O, P, I] stored, walked as [O, I, P]: each 3x3 kernel contiguous


@dataclass
class WeightTensor:
    """A constant int8 weight tensor that may be product-quantised."""

    name: str
    op_type: str  # operator that consumes it, e.g. "CONV_2D"
    shape: tuple[int, ...]
    group: Group
    layout: Layout
    kernel_positions: int  # P = H*W of a conv kernel ([O, P, I] in the file), 1 for 1x1/FC
    inner_channels: int  # I of a conv/depthwise kernel with P > 1, 1 otherwise
    offset: int  # byte offset of the payload in the original file
    values: np.ndarray  # int8, flat, in file order
    scales: np.ndarray  # float32, per channel (len 1 if per-tensor)
    quantized_dimension: int

    @property
    def size(self) -> int:
        return int(self.values.size)

    def vector_order(self) -> np.ndarray:
        """The tensor's int8 values in the order the PQ encoding walks them (as float32)."""
        v = self.values.astype(np.float32)
        perm = self.vector_permutation()
        return v if perm is None else v[perm]

    def vector_permutation(self) -> np.ndarray | None:
        """File-order positions in vector order (None: the orders are the same)."""
        if self.layout != Layout.KERNEL_MAJOR:
            return None
        p, i = self.kernel_positions, self.inner_channels
        return np.arange(self.size).reshape(-1, p, i).transpose(0, 2, 1).reshape(-1)

    def from_vector_order(self, v: np.ndarray) -> np.ndarray:
        """Inverse of `vector_order`: back to file order."""
        perm = self.vector_permutation()
        if perm is None:
            return v
        out = np.empty_like(v)
        out[perm] = v
        return out


@dataclass
class TensorInfo:
    """An input or output tensor of the model, for sample generation and reports."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name
    scale: float
    zero_point: int


@dataclass
class Tensor:
    """A tensor of the operator graph (subgraph 0), with its quantisation and constant data."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name
    scale: np.ndarray  # float64 (size 0: not quantised)
    zero_point: np.ndarray  # int64
    quantized_dimension: int
    offset: int | None  # file offset of the constant payload, None if not constant
    data: np.ndarray | None  # constant payload in `shape` (read-only view), None if none

    @property
    def quantized(self) -> bool:
        return self.scale.size > 0 and self.dtype in ("int8", "uint8", "int16", "int32")


@dataclass
class Operator:
    index: int
    name: str  # builtin name, e.g. "CONV_2D"; "CUSTOM:<code>" for custom operators
    inputs: list[int]  # tensor indices (-1: absent optional input)
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)  # frontend.flatbuffer.OPTION_FIELDS


@dataclass
class Graph:
    """Subgraph 0 as TFLM runs it: what the finetuning lift computes with."""

    tensors: list[Tensor]
    ops: list[Operator]  # in execution order
    inputs: list[int]  # tensor indices
    outputs: list[int]


@dataclass
class ModelIR:
    """One input model."""

    name: str  # task name: the input file's stem
    path: str
    data: bytes  # the original file
    operators: dict[str, int]  # operator name -> count
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    weights: list[WeightTensor]  # compressible tensors, in file order of their payloads
    erasable: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) name bytes
    custom_ops: list[str] = field(default_factory=list)
    float_input_range: tuple[float, float] | None = None  # for float inputs feeding a QUANTIZE
    classifier: bool = False  # output 0 is a softmax: top-1 agreement applies
    graph: Graph | None = None  # subgraph 0's operators and tensors (frontend.graph)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def weight_bytes(self) -> int:
        return sum(w.size for w in self.weights)


def replace(obj, **changes):
    """dataclasses.replace, re-exported so passes need not import dataclasses."""
    return dataclasses.replace(obj, **changes)

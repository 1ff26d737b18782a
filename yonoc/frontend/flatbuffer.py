"""Low-level access to the TFLite flatbuffer: type names, field locations, operator options.

The `tflite` package reads fields but not where they lie in the file; the compressor needs the
locations (weights are cut out and names erased in place), so the few vtable slots it needs
are named here, once.
"""

from __future__ import annotations

from typing import Any

import tflite
from flatbuffers.number_types import Int32Flags, UOffsetTFlags

from ..errors import ModelError

OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
NUMPY_TYPES = {
    "FLOAT32": "float32",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "FLOAT16": "float16",
}
_ACTIVATIONS = {
    v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")
}
_PADDINGS = {v: k for k, v in vars(tflite.Padding).items() if not k.startswith("_")}
_OPTION_TYPES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}

TFLITE_IDENTIFIER = b"TFL3"
# Vtable slots (byte offsets in the vtable) of fields whose location we need.
TENSOR_NAME_SLOT = 10
SUBGRAPH_NAME_SLOT = 12
MODEL_DESCRIPTION_SLOT = 10
BUFFER_DATA_SLOT = 4
OPCODE_BUILTIN_SLOT = 10


def numpy_type(tensor_type: int) -> str:
    """numpy dtype name of a TFLite tensor type (lower-cased TFLite name if numpy has none)."""
    name = TYPE_NAMES.get(tensor_type, str(tensor_type))
    return NUMPY_TYPES.get(name, name.lower())


def builtin_code(oc) -> int:
    """The operator code as TFLM reads it: max(builtin_code, deprecated_builtin_code).

    `tflite.OperatorCode.BuiltinCode()` returns the deprecated field for codes below 127, which
    is 0 (ADD) in files that set only `builtin_code` (valid, e.g. written by TFLM's
    model_editor); read the raw field instead.
    """
    o = UOffsetTFlags.py_type(oc._tab.Offset(OPCODE_BUILTIN_SLOT))
    code = oc._tab.Get(Int32Flags, o + oc._tab.Pos) if o else 0
    return max(int(code), int(oc.DeprecatedBuiltinCode()))


def operator_names(model) -> list[str]:
    """Name of every operator code: the builtin name, or `CUSTOM:<custom code>`."""
    names = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = builtin_code(oc)
        name = OP_NAMES.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            name = "CUSTOM:" + (oc.CustomCode() or b"?").decode("utf-8", "replace")
        names.append(name)
    return names


def vector_span(table, slot: int) -> tuple[int, int] | None:
    """(absolute position, element count) of a vector/string field, or None if absent."""
    o = UOffsetTFlags.py_type(table._tab.Offset(slot))
    if o == 0:
        return None
    return table._tab.Vector(o), table._tab.VectorLen(o)


def check_span(path: str, what: str, start: int, length: int, size: int) -> None:
    if start < 0 or length < 0 or start + length > size:
        raise ModelError(f"{path}: {what} lies outside the file (truncated or corrupt)")


def buffer_span(model, index: int, size: int, path: str) -> tuple[int, int]:
    """(file offset, length) of buffer `index`'s data; (0, 0) when it has none."""
    buf = model.Buffers(index) if 0 <= index < model.BuffersLength() else None
    if buf is None:
        raise ModelError(f"{path}: tensor refers to missing buffer {index}")
    if buf.Offset() > 1:  # large-model layout: data appended after the flatbuffer
        start, length = buf.Offset(), buf.Size()
    else:
        span = vector_span(buf, BUFFER_DATA_SLOT)
        start, length = span if span else (0, 0)
    check_span(path, f"buffer {index}", start, length, size)
    return start, length


# operator name -> (options table, {option key: accessor}); what the finetuning lift computes
# with. Enum-valued options are stored by name.
OPTION_FIELDS: dict[str, tuple[str, dict[str, str]]] = {
    "CONV_2D": (
        "Conv2DOptions",
        {
            "padding": "Padding",
            "stride_w": "StrideW",
            "stride_h": "StrideH",
            "dilation_w": "DilationWFactor",
            "dilation_h": "DilationHFactor",
            "activation": "FusedActivationFunction",
        },
    ),
    "DEPTHWISE_CONV_2D": (
        "DepthwiseConv2DOptions",
        {
            "padding": "Padding",
            "stride_w": "StrideW",
            "stride_h": "StrideH",
            "depth_multiplier": "DepthMultiplier",
            "dilation_w": "DilationWFactor",
            "dilation_h": "DilationHFactor",
            "activation": "FusedActivationFunction",
        },
    ),
    "FULLY_CONNECTED": (
        "FullyConnectedOptions",
        {
            "activation": "FusedActivationFunction",
            "keep_num_dims": "KeepNumDims",
            "weights_format": "WeightsFormat",
        },
    ),
    "ADD": ("AddOptions", {"activation": "FusedActivationFunction"}),
    "SUB": ("SubOptions", {"activation": "FusedActivationFunction"}),
    "MUL": ("MulOptions", {"activation": "FusedActivationFunction"}),
    "AVERAGE_POOL_2D": (
        "Pool2DOptions",
        {
            "padding": "Padding",
            "stride_w": "StrideW",
            "stride_h": "StrideH",
            "filter_w": "FilterWidth",
            "filter_h": "FilterHeight",
            "activation": "FusedActivationFunction",
        },
    ),
    "MAX_POOL_2D": (
        "Pool2DOptions",
        {
            "padding": "Padding",
            "stride_w": "StrideW",
            "stride_h": "StrideH",
            "filter_w": "FilterWidth",
            "filter_h": "FilterHeight",
            "activation": "FusedActivationFunction",
        },
    ),
    "CONCATENATION": (
        "ConcatenationOptions",
        {"axis": "Axis", "activation": "FusedActivationFunction"},
    ),
    "MEAN": ("ReducerOptions", {"keep_dims": "KeepDims"}),
    "REDUCE_MAX": ("ReducerOptions", {"keep_dims": "KeepDims"}),
    "SUM": ("ReducerOptions", {"keep_dims": "KeepDims"}),
    "SOFTMAX": ("SoftmaxOptions", {"beta": "Beta"}),
    "LEAKY_RELU": ("LeakyReluOptions", {"alpha": "Alpha"}),
}


def operator_options(name: str, op) -> dict[str, Any]:
    """The options of operator `op` named in OPTION_FIELDS; {} if it has none (or another
    options table than its operator's, which TFLM would not read either)."""
    spec = OPTION_FIELDS.get(name)
    if spec is None:
        return {}
    cls_name, fields = spec
    table = op.BuiltinOptions()
    if table is None or _OPTION_TYPES.get(op.BuiltinOptionsType()) != cls_name:
        return {}
    opt = getattr(tflite, cls_name)()
    opt.Init(table.Bytes, table.Pos)
    out = {key: getattr(opt, acc)() for key, acc in fields.items()}
    if "padding" in out:
        out["padding"] = _PADDINGS.get(out["padding"], "VALID")
    if "activation" in out:
        out["activation"] = _ACTIVATIONS.get(out["activation"], str(out["activation"]))
    return out

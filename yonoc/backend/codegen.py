"""C/C++ sources for a firmware: the image as a flash array, task descriptions, op resolver.

`yonoc build ... --emit-c DIR [--prefix NAME]` writes three files into DIR:

- `<prefix>_image.h`  task enum, names, per-task input/output shapes, types, scale and zero
  point, model-region, tensor-arena and codeword-cache sizes and their SRAM total
  (`budget.firmware_sram`, the figure `--sram` checks). Plain C, needs no TFLM header.
- `<prefix>_image.cc` the image as `alignas(16) const uint8_t <prefix>_image[]` (plus its size
  and the task table). Needs no TFLM header.
- `<prefix>_ops.h`    `<prefix>_register_ops()` for a `tflite::MicroMutableOpResolver<N>` that
  registers exactly the union of the operators the image's models use (header only: it is the
  one generated file that needs TFLM headers, and only the files that include it do).

Everything is taken from the image itself (each task is rebuilt and read back), so the
descriptions always match what the firmware will rebuild. Output is deterministic: the same
image and prefix give byte-identical files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .. import __version__
from ..budget import firmware_sram, task_sram
from ..errors import YonocError
from . import image_format as fmt
from .format_spec import DECODE_CUSTOM_CODE

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

# numpy dtype name -> (TfLiteType value, element bytes, upper-case name). TfLiteType numbers are
# TFLM's (tensorflow/lite/core/c/c_api_types.h) so that firmware can compare them directly.
DTYPES = {
    "float32": (1, 4, "FLOAT32"),
    "int32": (2, 4, "INT32"),
    "uint8": (3, 1, "UINT8"),
    "int64": (4, 8, "INT64"),
    "bool": (6, 1, "BOOL"),
    "int16": (7, 2, "INT16"),
    "int8": (9, 1, "INT8"),
    "float16": (10, 2, "FLOAT16"),
    "float64": (11, 8, "FLOAT64"),
    "uint64": (13, 8, "UINT64"),
    "uint32": (16, 4, "UINT32"),
    "uint16": (17, 2, "UINT16"),
}

# TFLite builtin operator (schema name) -> tflite::MicroMutableOpResolver method.
# From tensorflow/lite/micro/micro_mutable_op_resolver.h (tflite-micro, 2026).
BUILTIN_OPS = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "ELU": "AddElu",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MIRROR_PAD": "AddMirrorPad",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQUEEZE": "AddSqueeze",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "TRANSPOSE": "AddTranspose",
    "UNPACK": "AddUnpack",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
}

# Custom operators TFLM itself implements (custom name in the model -> resolver method). The
# signal ops need TFLM's signal library (signal/micro/kernels), part of TFLM's default build.
CUSTOM_OPS = {
    "SignalDelay": "AddDelay",
    "SignalEnergy": "AddEnergy",
    "SignalFftAutoScale": "AddFftAutoScale",
    "SignalFilterBank": "AddFilterBank",
    "SignalFilterBankLog": "AddFilterBankLog",
    "SignalFilterBankSquareRoot": "AddFilterBankSquareRoot",
    "SignalFilterBankSpectralSubtraction": "AddFilterBankSpectralSubtraction",
    "SignalFramer": "AddFramer",
    "SignalIrfft": "AddIrfft",
    "SignalOverlapAdd": "AddOverlapAdd",
    "SignalPCAN": "AddPCAN",
    "SignalRfft": "AddRfft",
    "SignalStacker": "AddStacker",
    "SignalWindow": "AddWindow",
    "CIRCULAR_BUFFER": "AddCircularBuffer",
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEX = [f"0x{b:02x}" for b in range(256)]
BYTES_PER_LINE = 16


@dataclass
class TensorDesc:
    dtype: str
    type_code: int
    type_name: str
    dims: tuple
    bytes: int
    scale: float
    zero_point: int

    @property
    def scale_literal(self) -> str:
        return _float_literal(self.scale)


@dataclass
class TaskDesc:
    index: int
    name: str
    ident: str  # upper-case C identifier part
    model_size: int
    arena_size: int
    model_crc32: int
    inputs: list
    outputs: list
    operators: list  # sorted op names (a flash task's include CUSTOM:YONO_DECODE)
    flash: bool = False  # runs in place from flash (image format "Flash tasks")
    sram_size: int = 0  # its own SRAM in its mode: model region (rebuild only) + arena


@dataclass
class OpDesc:
    name: str  # "CONV_2D" or "CUSTOM:SignalWindow"
    method: str
    tasks: list  # task names that use it


@dataclass
class Generated:
    files: dict  # file name -> bytes
    op_count: int


def _float_literal(x: float) -> str:
    """A C float literal that round-trips the float32 value exactly (and deterministically)."""
    import numpy as np

    v = float(np.float32(x))
    if v == 0.0:
        return "0.0f"
    r = np.format_float_scientific(np.float32(v), unique=True, trim="0")
    if "." not in r.split("e")[0]:
        m, e = r.split("e")
        r = f"{m}.0e{e}"
    return f"{r}f"


def check_prefix(prefix: str) -> str:
    if not prefix or not _IDENT.match(prefix):
        raise YonocError(
            f"--prefix {prefix!r}: must be a C identifier (letters, digits, _; "
            "not starting with a digit)"
        )
    if prefix.lower() == "yono":
        raise YonocError(
            "--prefix 'yono' is the runtime's own prefix (yono_image, YONO_...): "
            "the generated names would collide; choose another, e.g. app"
        )
    if prefix.startswith("__") or re.match(r"^_[A-Z]", prefix):
        raise YonocError(
            f"--prefix {prefix!r}: identifiers starting with __ or _<capital> are "
            "reserved in C and C++"
        )
    return prefix


def _ident(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    return f"T{s}" if s[:1].isdigit() else s


def _tensor(info, task: str, what: str) -> TensorDesc:
    if info.dtype not in DTYPES:
        raise YonocError(
            f"task {task!r}: {what} has type {info.dtype}, which the generated C "
            f"descriptions do not support ({', '.join(sorted(DTYPES))})"
        )
    code, size, tname = DTYPES[info.dtype]
    count = 1
    for d in info.shape:
        if d < 0:
            raise YonocError(
                f"task {task!r}: {what} has a dynamic shape {list(info.shape)}; "
                "TFLM needs static shapes"
            )
        count *= d
    return TensorDesc(
        info.dtype,
        code,
        tname,
        tuple(int(d) for d in info.shape),
        count * size,
        float(info.scale),
        int(info.zero_point),
    )


def resolver_ops(tasks: list) -> list:
    """The union of operators over all tasks, mapped to resolver methods (sorted by name)."""
    users: dict = {}
    for t in tasks:
        for op in t.operators:
            if op != DECODE_OP:  # the runtime's own kernel (yono::tflm registers it)
                users.setdefault(op, []).append(t.name)
    ops, unknown = [], []
    for name in sorted(users):
        if name.startswith("CUSTOM:"):
            method = CUSTOM_OPS.get(name[len("CUSTOM:") :])
        else:
            method = BUILTIN_OPS.get(name)
        if method is None:
            unknown.append(f"{name} (in {', '.join(users[name])})")
        else:
            ops.append(OpDesc(name, method, users[name]))
    if unknown:
        raise YonocError(
            "no TFLM op resolver registration is known for operator(s): "
            + "; ".join(unknown)
            + ". Custom operators other than TFLM's own "
            "(signal ops, CIRCULAR_BUFFER, TFLite_Detection_PostProcess) must be "
            "registered by the firmware; --emit-c cannot generate them"
        )
    # distinct methods: two custom names never share a method, builtins are unique keys
    return ops


DECODE_OP = f"CUSTOM:{DECODE_CUSTOM_CODE}"


def describe(image: fmt.Image) -> list:
    """TaskDesc per task, read from the rebuilt models."""
    from ..frontend import read_model_bytes

    tasks, idents = [], {}
    for i, t in enumerate(image.tasks):
        ir = read_model_bytes(fmt.rebuild(image, i), t.name)
        ident = _ident(t.name)
        if ident in idents:
            raise YonocError(
                f"task names {idents[ident]!r} and {t.name!r} both become {ident} in C; rename one"
            )
        idents[ident] = t.name
        tasks.append(
            TaskDesc(
                index=i,
                name=t.name,
                ident=ident,
                model_size=t.model_size,
                arena_size=t.arena_size,
                model_crc32=t.model_crc32,
                inputs=[_tensor(x, t.name, f"input {k}") for k, x in enumerate(ir.inputs)],
                outputs=[_tensor(x, t.name, f"output {k}") for k, x in enumerate(ir.outputs)],
                operators=sorted(ir.operators),
                flash=t.flash,
                sram_size=task_sram(t),
            )
        )
    return tasks


def _c_string(s: str) -> str:
    """A C string literal for UTF-8 text (non-ASCII and specials as octal escapes)."""
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c in '"\\?':
            out.append("\\" + c)
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _c_comment(s: str) -> str:
    """Text safe inside a // comment: printable ASCII only, no line continuation."""
    return "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in s)


def _byte_lines(data: bytes) -> str:
    lines = []
    for i in range(0, len(data), BYTES_PER_LINE):
        lines.append("    " + ", ".join(_HEX[b] for b in data[i : i + BYTES_PER_LINE]) + ",")
    return "\n".join(lines)


def _env():
    try:
        import jinja2
    except ImportError:  # pragma: no cover - jinja2 is a declared dependency
        from ..errors import MissingDependencyError

        raise MissingDependencyError("--emit-c needs jinja2: pip install jinja2") from None
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["c_string"] = _c_string
    env.filters["c_comment"] = _c_comment
    return env


def generate(image_bytes: bytes, prefix: str) -> Generated:
    """All generated files (name -> bytes) for an image, without writing anything."""
    prefix = check_prefix(prefix)
    image = fmt.read_image(image_bytes)
    tasks = describe(image)
    ops = resolver_ops(tasks)
    max_in = max((len(t.inputs) for t in tasks), default=0)
    max_out = max((len(t.outputs) for t in tasks), default=0)
    max_rank = max([len(x.dims) for t in tasks for x in t.inputs + t.outputs] + [1])
    sram = firmware_sram(image)
    ctx = dict(
        prefix=prefix,
        P=prefix.upper(),
        version=__version__,
        tasks=tasks,
        ops=ops,
        image_size=len(image.data),
        image_crc32=int.from_bytes(image.data[12:16], "little"),
        max_model_size=image.max_model_size,
        max_arena_size=image.max_arena_size,
        arena_measured=all(t.arena_size for t in tasks),
        sram=sram,
        codeword_cache_size=sram.codeword_cache,
        flash_tasks=[t.name for t in tasks if t.flash],  # ops.h: register YONO_DECODE if any
        decode_op=DECODE_CUSTOM_CODE,
        max_inputs=max_in,
        max_outputs=max_out,
        max_rank=max_rank,
        guard=f"{prefix.upper()}_YONO",
        alignment=fmt.ALIGN,
        tflite_types=sorted(
            ((name, code) for code, _, name in DTYPES.values()), key=lambda nc: nc[1]
        ),
    )
    env = _env()
    files = {}
    files[f"{prefix}_image.h"] = env.get_template("image.h.j2").render(ctx)
    files[f"{prefix}_ops.h"] = env.get_template("ops.h.j2").render(ctx)
    cc = env.get_template("image.cc.j2").render(ctx, image_bytes="@@IMAGE_BYTES@@")
    head, tail = cc.split("@@IMAGE_BYTES@@")
    files[f"{prefix}_image.cc"] = head + _byte_lines(image.data) + tail
    return Generated({k: v.encode("utf-8") for k, v in files.items()}, len(ops))


def emit_c(image_bytes: bytes, out_dir: str, prefix: str) -> list:
    """Write the generated files atomically into out_dir; returns their paths."""
    from ..fileio import write_atomic

    gen = generate(image_bytes, prefix)
    if not os.path.isdir(out_dir):
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as e:
            raise YonocError(f"{out_dir}: cannot create directory ({e.strerror})") from None
    paths = []
    for name in sorted(gen.files):
        path = os.path.join(out_dir, name)
        write_atomic(path, gen.files[name])
        paths.append(path)
    return paths

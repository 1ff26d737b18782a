"""The image layout, written down once.

Every offset, size, enum value and limit of the yonoc image lives in the tables below. The
Python writer/reader (image_format.py) derives its struct packing from them, and the C/C++
reader uses runtime/include/yono/image_format.h, which is generated from them:

    python -m yonoc.backend.format_spec --write     # regenerate the committed header
    python -m yonoc.backend.format_spec --check     # exit 1 if it is stale

docs/image-format.md stays hand-written prose; tests/test_format_spec.py checks its field
tables and limits against these tables, and fails when the committed header is stale.
"""

from __future__ import annotations

import argparse
import re
import struct
import sys
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

MAGIC = b"YONO"
FORMAT_VERSION = 4  # 4: flash-resident tasks (TASK_FLAG_FLASH, issue 14)
ALIGN = 16  # every data section starts on this boundary
MODEL_ALIGNMENT = 16  # a rebuilt model's region (TFLM reads buffers in place)
MAX_TASKS = 0xFFFF  # u16 count
MAX_CODEBOOKS = 0xFFFF  # u16 count
MAX_CODEWORDS = 256  # one-byte indices
MAX_SUBVECTOR_LEN = 16  # keeps a reader's codeword cache small
MAX_SUBCODEBOOKS = 4  # M of a PQ record
MAX_NAME_LENGTH = 255
MAX_IMAGE_SIZE = 0xFFFFFFFF  # u32 offsets
TASK_FLAG_FLASH = 0x1  # task entry flags bit 0: the model is stored whole and runs in place
TASK_FLAGS_KNOWN = TASK_FLAG_FLASH  # a reader rejects any other task flag bit
DECODE_CUSTOM_CODE = "YONO_DECODE"  # a flash model's decode operator (docs: "Flash tasks")


class FillKind(IntEnum):
    ZERO = 0
    RAW = 1
    PQ = 2
    PQ_RESIDUAL = 3  # PQ plus a second PQ stage coding its residual (issue 9)


class Layout(IntEnum):
    """Where a PQ record's vector order goes (docs/image-format.md, 'Fill record')."""

    LINEAR = 0
    KERNEL_MAJOR = 1


class Group(IntEnum):
    """Codebook groups: A = 3x3 conv/depthwise kernels, B = 1x1 conv and fully-connected."""

    A = 0
    B = 1


@dataclass(frozen=True)
class Field:
    offset: int
    type: str  # u8, u16, u32 or u8[N]
    name: str
    meaning: str = ""

    @property
    def size(self) -> int:
        m = re.fullmatch(r"u8\[(\d+)\]", self.type)
        return int(m.group(1)) if m else {"u8": 1, "u16": 2, "u32": 4}[self.type]

    @property
    def code(self) -> str:
        """struct code: reserved byte arrays are padding, other arrays are bytes."""
        if self.type.startswith("u8["):
            return f"{self.size}{'x' if self.name == 'reserved' else 's'}"
        return {"u8": "B", "u16": "H", "u32": "I"}[self.type]


@dataclass(frozen=True)
class Record:
    title: str  # the docs heading it is checked against
    c_name: str  # prefix of its field-offset macros in the C header
    c_size: str  # name of its size macro
    size: int
    fields: tuple

    def __post_init__(self):
        at = 0
        for f in self.fields:
            assert f.offset == at, f"{self.title}: {f.name} at {f.offset}, expected {at}"
            at += f.size
        assert at == self.size, f"{self.title}: fields end at {at}, not {self.size}"
        assert struct.calcsize(self.struct_format) == self.size

    @property
    def struct_format(self) -> str:
        return "<" + "".join(f.code for f in self.fields)

    def offset(self, name: str) -> int:
        return next(f.offset for f in self.fields if f.name == name)


HEADER = Record(
    "Header",
    "HEADER",
    "HEADER_SIZE",
    64,
    (
        Field(0, "u8[4]", "magic", '"YONO"'),
        Field(4, "u16", "format_version", "YONO_FORMAT_VERSION"),
        Field(6, "u16", "header_size", "YONO_HEADER_SIZE"),
        Field(8, "u32", "image_size", "total bytes of the image"),
        Field(12, "u32", "crc32", "CRC-32 of bytes [YONO_CRC_START, image_size)"),
        Field(16, "u32", "flags", "0"),
        Field(20, "u16", "codebook_count", "entries in the codebook table"),
        Field(22, "u16", "task_count", "entries in the task table (>= 1)"),
        Field(24, "u32", "codebook_table_offset", ""),
        Field(28, "u32", "task_table_offset", ""),
        Field(32, "u32", "max_model_size", "largest model_size of the rebuild tasks (0: none)"),
        Field(36, "u32", "max_arena_size", "largest arena_size of any task"),
        Field(40, "u32", "notes_offset", "opaque build notes, 16-aligned, 0 if none"),
        Field(44, "u32", "notes_size", "bytes of build notes"),
        Field(48, "u8[16]", "reserved", "0"),
    ),
)

CODEBOOK_ENTRY = Record(
    "Codebook table entry",
    "CODEBOOK",
    "CODEBOOK_ENTRY_SIZE",
    16,
    (
        Field(0, "u8", "group", "Group"),
        Field(1, "u8", "subvector_len", "s, 1..MAX_SUBVECTOR_LEN"),
        Field(2, "u16", "codeword_count", "K, 1..MAX_CODEWORDS"),
        Field(4, "u32", "data_offset", "K*s binary16 values, codeword-major"),
        Field(8, "u32", "data_size", "K*s*2"),
        Field(12, "u32", "reserved", "0"),
    ),
)

TASK_ENTRY = Record(
    "Task table entry",
    "TASK",
    "TASK_ENTRY_SIZE",
    64,
    (
        Field(0, "u32", "name_offset", "UTF-8 name followed by one 0 byte"),
        Field(4, "u32", "name_length", "1..MAX_NAME_LENGTH"),
        Field(8, "u32", "model_size", "bytes of the rebuilt .tflite"),
        Field(12, "u32", "model_crc32", "CRC-32 of the rebuilt model"),
        Field(16, "u32", "skeleton_offset", "model bytes no fill record covers"),
        Field(20, "u32", "skeleton_size", ""),
        Field(24, "u32", "fill_table_offset", "16-aligned array of fill records"),
        Field(28, "u32", "fill_count", ""),
        Field(32, "u32", "arena_size", "TFLM arena bytes at build time (0 = not measured)"),
        Field(36, "u32", "flags", "TASK_FLAG_FLASH or 0; other bits 0"),
        Field(40, "u32", "original_size", "bytes of the input .tflite"),
        Field(44, "u8[20]", "reserved", "0"),
    ),
)

FILL_RECORD = Record(
    "Fill record",
    "FILL",
    "FILL_RECORD_SIZE",
    24,
    (
        Field(0, "u32", "dst_offset", "where in the rebuilt model it writes"),
        Field(4, "u32", "length", "bytes it writes (> 0)"),
        Field(8, "u8", "kind", "FillKind"),
        Field(9, "u8", "layout", "Layout (PQ only)"),
        Field(10, "u8", "codebook_count", "M, 1..MAX_SUBCODEBOOKS (PQ only)"),
        Field(11, "u8", "residual_count", "M2 of the residual stage (PQ_RESIDUAL only)"),
        Field(12, "u16", "codebook_first", "first of M consecutive codebooks (PQ only)"),
        Field(14, "u16", "kernel_positions", "P (PQ layout 1 only)"),
        Field(16, "u32", "src_offset", "RAW payload or PQ index array"),
        Field(20, "u16", "inner_channels", "I (PQ layout 1 only)"),
        Field(22, "u16", "residual_first", "first residual codebook (PQ_RESIDUAL only)"),
    ),
)

RECORDS = (HEADER, CODEBOOK_ENTRY, TASK_ENTRY, FILL_RECORD)
CRC_START = HEADER.offset("crc32") + 4  # the CRC covers everything after itself

# Limits as docs/image-format.md's "Limits" table states them (checked by a test).
LIMITS = {
    "image size": "< 4 GiB",
    "tasks": str(MAX_TASKS),
    "codewords per codebook": str(MAX_CODEWORDS),
    "values per codeword": str(MAX_SUBVECTOR_LEN),
    "sub-codebooks per PQ record": str(MAX_SUBCODEBOOKS),
}
assert MAX_IMAGE_SIZE == 4 * 2**30 - 1

HEADER_PATH = Path(__file__).resolve().parents[2] / "runtime/include/yono/image_format.h"


def c_header() -> str:
    """The generated C header: #defines usable from C and C++ (no heap, no types)."""

    def d(name, value, comment=""):
        return f"#define YONO_{name} {value}" + (f"  // {comment}" if comment else "")

    out = [
        "// Generated by `python -m yonoc.backend.format_spec --write` from",
        "// yonoc/backend/format_spec.py; do not edit: tests/test_format_spec.py",
        "// fails when this file is stale.",
        "// The yonoc image layout (docs/image-format.md): offsets and sizes in bytes.",
        "#ifndef YONO_IMAGE_FORMAT_H_",
        "#define YONO_IMAGE_FORMAT_H_",
        "",
        d("FORMAT_VERSION", f"{FORMAT_VERSION}u"),
        d("MAGIC", '"' + MAGIC.decode() + '"'),
        d("MAGIC_SIZE", f"{len(MAGIC)}u"),
        d("SECTION_ALIGNMENT", f"{ALIGN}u", "every data section starts on this boundary"),
        d("MODEL_ALIGNMENT", f"{MODEL_ALIGNMENT}u", "a rebuilt model's region"),
        d("CRC_START", f"{CRC_START}u", "the header CRC covers [CRC_START, image_size)"),
        d("MAX_TASKS", f"{MAX_TASKS}u"),
        d("MAX_CODEBOOKS", f"{MAX_CODEBOOKS}u"),
        d("MAX_CODEWORDS", f"{MAX_CODEWORDS}u"),
        d("MAX_SUBVECTOR_LEN", f"{MAX_SUBVECTOR_LEN}u"),
        d("MAX_SUBCODEBOOKS", f"{MAX_SUBCODEBOOKS}u"),
        d("MAX_NAME_LENGTH", f"{MAX_NAME_LENGTH}u"),
        d("TASK_FLAG_FLASH", f"{TASK_FLAG_FLASH}u", "task runs in place from flash"),
        d("TASK_FLAGS_KNOWN", f"{TASK_FLAGS_KNOWN}u", "any other task flag bit is rejected"),
        d("DECODE_CUSTOM_CODE", f'"{DECODE_CUSTOM_CODE}"', "a flash model's decode operator"),
        "",
    ]
    for enum, prefix in ((FillKind, "FILL_KIND"), (Layout, "LAYOUT"), (Group, "GROUP")):
        out += [d(f"{prefix}_{e.name}", f"{int(e)}u") for e in enum] + [""]
    for rec in RECORDS:
        out.append(f"// {rec.title} ({rec.size} bytes): byte offsets of its fields.")
        out.append(d(rec.c_size, f"{rec.size}u"))
        for f in rec.fields:
            if f.name != "reserved":
                out.append(
                    d(
                        f"{rec.c_name}_{f.name.upper()}_OFF",
                        f"{f.offset}u",
                        f"{f.type}" + (f": {f.meaning}" if f.meaning else ""),
                    )
                )
        out.append("")
    out.append("#endif  // YONO_IMAGE_FORMAT_H_")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m yonoc.backend.format_spec",
        description="Write or check runtime/include/yono/image_format.h.",
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", action="store_true")
    g.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    text = c_header()
    if args.write:
        tmp = HEADER_PATH.with_suffix(".h.tmp")
        tmp.write_text(text)
        tmp.replace(HEADER_PATH)
        return 0
    current = HEADER_PATH.read_text() if HEADER_PATH.exists() else ""
    if current != text:
        print(
            f"{HEADER_PATH} is stale: run python -m yonoc.backend.format_spec --write",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The layout's one definition (yonoc/backend/format_spec.py) against everything that restates
it: the generated C header, the docs' field tables and limits, and the Python struct packing."""

import re
import struct
from pathlib import Path

import pytest

from yonoc.backend import format_spec as spec
from yonoc.backend import image_format as fmt

DOCS = Path(__file__).resolve().parents[1] / "docs" / "image-format.md"


def _docs_tables() -> dict:
    """{heading: [row cells]} for every markdown table under a '##'/'###' heading."""
    tables, heading = {}, None
    for line in DOCS.read_text().splitlines():
        m = re.match(r"#{2,3} (.+)", line)
        if m:
            heading = m.group(1)
            continue
        if line.startswith("|") and heading:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if set("".join(cells)) <= set("-: "):
                continue  # the separator row
            tables.setdefault(heading, []).append(cells)
    return tables


def test_committed_c_header_is_generated_from_the_spec():
    assert spec.HEADER_PATH.read_text() == spec.c_header(), (
        "runtime/include/yono/image_format.h is stale: "
        "run python -m yonoc.backend.format_spec --write"
    )


def test_check_mode_reports_a_stale_header(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "image_format.h"
    stale.write_text(
        spec.c_header().replace(
            f"YONO_FORMAT_VERSION {spec.FORMAT_VERSION}u", "YONO_FORMAT_VERSION 1u"
        )
    )
    monkeypatch.setattr(spec, "HEADER_PATH", stale)
    assert spec.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert spec.main(["--write"]) == 0 and spec.main(["--check"]) == 0


@pytest.mark.parametrize("record", spec.RECORDS, ids=lambda r: r.title)
def test_docs_field_table_matches_the_spec(record):
    tables = _docs_tables()
    heading = next((h for h in tables if h.startswith(f"{record.title} (")), None)
    assert heading == f"{record.title} ({record.size} bytes" + (
        ", at offset 0)" if record is spec.HEADER else ")"
    )
    header, *rows = tables[heading]
    assert header[:3] == ["offset", "type", "field"]
    assert [(int(r[0]), r[1], r[2]) for r in rows] == [
        (f.offset, f.type, f.name) for f in record.fields
    ]


def test_docs_limits_and_version_match_the_spec():
    tables = _docs_tables()
    limits = {r[0]: r[1] for r in tables["Limits"][1:]}
    assert limits == spec.LIMITS
    text = DOCS.read_text()
    assert text.splitlines()[0] == f"# yonoc image format, version {spec.FORMAT_VERSION}"
    header_rows = {r[2]: r[3] for r in tables["Header (64 bytes, at offset 0)"][1:]}
    assert header_rows["format_version"] == str(spec.FORMAT_VERSION)
    assert header_rows["header_size"] == str(spec.HEADER.size)
    assert header_rows["magic"].startswith(f"`{spec.MAGIC.hex(' ').upper()}`")
    kinds = {r[2]: r[3] for r in tables["Fill record (24 bytes)"][1:]}["kind"]
    assert kinds == ", ".join(f"{int(k)} = {k.name}" for k in spec.FillKind)


def test_python_packing_is_derived_from_the_spec():
    for rec, st in (
        (spec.HEADER, fmt.HEADER),
        (spec.CODEBOOK_ENTRY, fmt.CODEBOOK_ENTRY),
        (spec.TASK_ENTRY, fmt.TASK_ENTRY),
        (spec.FILL_RECORD, fmt.FILL_RECORD),
    ):
        assert st.size == rec.size
        # pack every non-padding field with a distinct value and find it at its offset
        values, probe = [], []
        for i, f in enumerate(rec.fields):
            if f.code.endswith("x"):
                continue
            v = bytes([i + 1]) * f.size if f.code.endswith("s") else i + 1
            values.append(v)
            probe.append((f, v))
        data = st.pack(*values)
        for f, v in probe:
            raw = data[f.offset : f.offset + f.size]
            got = raw if isinstance(v, bytes) else int.from_bytes(raw, "little")
            assert got == v, f"{rec.title}.{f.name}"


def test_record_definitions_refuse_gaps_and_overlaps():
    with pytest.raises(AssertionError, match="expected 4"):
        spec.Record("t", "T", "T_SIZE", 8, (spec.Field(0, "u32", "a"), spec.Field(5, "u8", "b")))
    with pytest.raises(AssertionError, match="not 8"):
        spec.Record("t", "T", "T_SIZE", 8, (spec.Field(0, "u32", "a"),))


def test_image_header_fields_sit_where_the_spec_says():
    data = fmt.write_image([], [fmt.Task("a", bytes(40), [])], notes=b"xyz")
    off = spec.HEADER.offset
    assert data[off("magic") : off("magic") + 4] == spec.MAGIC
    assert struct.unpack_from("<H", data, off("format_version"))[0] == spec.FORMAT_VERSION
    assert struct.unpack_from("<I", data, off("image_size"))[0] == len(data)
    notes_at, notes_size = struct.unpack_from("<II", data, off("notes_offset"))
    assert data[notes_at : notes_at + notes_size] == b"xyz" and notes_at % spec.ALIGN == 0

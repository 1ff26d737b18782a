"""`yonoc add`: a new model coded with an image's frozen codebooks, appended so that the old
image is a byte prefix of the new one except for the 64-byte header."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from yonoc.backend import format_spec as spec
from yonoc.backend import image_format as fmt

from conftest import EXAMPLES, QUICK, yonoc_in_process

# appended to the session image of the fast examples (conftest.examples_built): a model that is
# not in it, small enough that its fidelity search is quick
NEW = os.path.join(EXAMPLES, "cancer_mlp.tflite")
# header fields (docs/image-format.md, "Appending a task") that `add` may change
MAY_CHANGE = {
    "image_size",
    "crc32",
    "task_count",
    "task_table_offset",
    "max_model_size",
    "max_arena_size",
    "notes_offset",
    "notes_size",
}


@pytest.fixture(scope="module")
def base(examples_built):
    return examples_built.image


def _changed_header_fields(old: bytes, new: bytes) -> set:
    return {
        f.name
        for f in spec.HEADER.fields
        if old[f.offset : f.offset + f.size] != new[f.offset : f.offset + f.size]
    }


def _check_append(old: bytes, new: bytes, added: str):
    h = spec.HEADER.size
    assert new[h : len(old)] == old[h:], "bytes after the header must not change"
    assert _changed_header_fields(old, new) <= MAY_CHANGE
    a, b = fmt.read_image(old), fmt.read_image(new)
    assert [t.name for t in b.tasks] == [t.name for t in a.tasks] + [added]
    for i in range(len(a.tasks)):
        assert fmt.rebuild(b, i) == fmt.rebuild(a, i)
        ta, tb = a.tasks[i], b.tasks[i]
        assert (tb.skeleton_offset, tb.model_crc32, len(tb.fills)) == (
            ta.skeleton_offset,
            ta.model_crc32,
            len(ta.fills),
        )
    assert len(b.codebooks) == len(a.codebooks)
    assert all((x.codewords == y.codewords).all() for x, y in zip(a.codebooks, b.codebooks))
    return a, b


def test_add_appends_with_frozen_codebooks_and_only_the_header_changes(base, tmp_path):
    out = tmp_path / "new.bin"
    p = yonoc_in_process("add", base, NEW, "-o", out)
    assert "appended" in p.stdout
    old, new = base.read_bytes(), out.read_bytes()
    a, b = _check_append(old, new, "cancer_mlp")
    assert _changed_header_fields(old, new) >= {
        "image_size",
        "crc32",
        "task_count",
        "task_table_offset",
    }
    # the new task is coded with the image's codebooks and keeps its fidelity target
    pq = [f for f in b.tasks[-1].fills if f.kind == fmt.FillKind.PQ]
    assert pq and all(f.codebook_first + f.codebook_count <= len(a.codebooks) for f in pq)
    r = json.loads(yonoc_in_process("inspect", out, "--json").stdout)
    assert r["models"][-1]["name"] == "cancer_mlp" and r["models"][-1]["snr_db"] >= 20.0
    assert (
        r["models"][0]["snr_db"]
        == json.loads(yonoc_in_process("inspect", base, "--json").stdout)["models"][0]["snr_db"]
    )
    # twice: the first add is a prefix of the second the same way
    other = tmp_path / "cancer_copy.tflite"
    shutil.copy(NEW, other)
    out2 = tmp_path / "new2.bin"
    yonoc_in_process(
        "add",
        out,
        other,
        "-o",
        out2,
        *QUICK,
    )
    _check_append(new, out2.read_bytes(), "cancer_copy")


def test_add_uses_only_rates_the_image_kept(tmp_path):
    """A pq-m image keeps one (coarsest) rate per group; the added model cannot use others."""
    image = tmp_path / "pqm.bin"
    # digits_mlp and NEW are both fully connected: the same codebook group
    first = os.path.join(EXAMPLES, "digits_mlp.tflite")
    yonoc_in_process(
        "build",
        first,
        "-o",
        image,
        "--mode",
        "pq-m",
        *QUICK,
        "-j",
        "1",
    )
    out = tmp_path / "new.bin"
    yonoc_in_process(
        "add",
        image,
        NEW,
        "-o",
        out,
        "--mode",
        "pq-m",
        *QUICK,
    )
    rows = json.loads(yonoc_in_process("inspect", out, "--json", "--tensors").stdout)["models"]
    have = {t["rate"] for m in rows[:-1] for t in m["tensors"] if t["rate"] != "raw"}
    added = {t["rate"] for t in rows[-1]["tensors"] if t["rate"] != "raw"}
    assert added and added <= have


def test_add_int8_mode_stores_the_model_exactly(base, tmp_path):
    out = tmp_path / "new.bin"
    yonoc_in_process("add", base, NEW, "-o", out, "--mode", "int8", "--no-check")
    b = fmt.read_image(out.read_bytes())
    assert fmt.rebuild(b, len(b.tasks) - 1) == open(NEW, "rb").read()


def test_add_duplicate_name_is_exit_2_and_writes_nothing(base, tmp_path):
    out = tmp_path / "dup.bin"
    dup = os.path.join(EXAMPLES, "digits_mlp.tflite")
    p = yonoc_in_process("add", base, dup, "-o", out, check=False)
    assert p.returncode == 2 and p.stderr.startswith("yonoc: error:") and "digits_mlp" in p.stderr
    assert not out.exists()


def test_add_to_a_corrupt_image_is_exit_4(base, tmp_path):
    bad = tmp_path / "bad.bin"
    data = bytearray(base.read_bytes())
    data[100] ^= 0xFF
    bad.write_bytes(bytes(data))
    p = yonoc_in_process("add", bad, NEW, "-o", tmp_path / "x.bin", check=False)
    assert p.returncode == 4 and not (tmp_path / "x.bin").exists()

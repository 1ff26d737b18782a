"""Flash tasks in the image (format v4), the --execute choice, and what inspect, the generated
header, the SRAM check and `yonoc add` make of them."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from yonoc.backend import execute
from yonoc.backend import format_spec as spec
from yonoc.backend import image_format as fmt
from yonoc.errors import ImageError, YonocError

from conftest import EXAMPLES, QUICK, run_yonoc, small_models, yonoc_in_process

TWO = small_models()
ADDED = os.path.join(EXAMPLES, "cancer_mlp.tflite")  # appended by `add`: small, not in TWO


# --- the format: a flash task is stored whole ----------------------------------------------


def _tiny_tasks():
    model = bytes(range(256)) * 3
    return [
        fmt.Task("reb", model + b"\0" * 64, [], 1000, 900),
        fmt.Task("fl", model * 2, [], 3000, 1500, flash=True),
    ]


def test_flash_task_round_trips_and_max_model_counts_rebuild_tasks_only():
    tasks = _tiny_tasks()
    img = fmt.read_image(fmt.write_image([], tasks))
    assert [t.flash for t in img.tasks] == [False, True]
    assert img.max_model_size == len(tasks[0].model)  # the flash task is larger, not counted
    assert img.max_arena_size == 3000
    fl = img.tasks[1]
    assert (fl.fills, fl.skeleton_size, fl.skeleton_offset % 16) == ([], fl.model_size, 0)
    assert fmt.rebuild(img, 1) == tasks[1].model
    row = img.data[fmt.read_header(img.data).task_table_offset + fmt.TASK_ENTRY.size :]
    assert fmt.TASK_ENTRY.unpack_from(row)[6] == 0  # fill_table_offset
    assert fmt.TASK_ENTRY.unpack_from(row)[9] == spec.TASK_FLAG_FLASH
    only_flash = fmt.read_image(fmt.write_image([], tasks[1:]))
    assert only_flash.max_model_size == 0


def _patch_task(data: bytes, task: int, field: str, value: int) -> bytes:
    buf = bytearray(data)
    table = fmt.read_header(buf).task_table_offset
    at = table + fmt.TASK_ENTRY.size * task + spec.TASK_ENTRY.offset(field)
    struct.pack_into("<I", buf, at, value)
    fmt.seal_crc(buf)
    return bytes(buf)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("flags", 0x2, "unknown flags"),
        ("flags", 0x3, "unknown flags"),
        ("fill_count", 1, "not stored whole"),
        ("fill_table_offset", 64, "not stored whole"),
        ("skeleton_size", 16, "not stored whole"),
    ],
)
def test_reader_rejects_bad_flash_entries(field, value, match):
    data = fmt.write_image([], _tiny_tasks())
    with pytest.raises(ImageError, match=match):
        fmt.read_image(_patch_task(data, 1, field, value))


def test_a_rebuild_task_larger_than_max_model_size_is_rejected_but_a_flash_task_is_not():
    data = fmt.write_image([], _tiny_tasks())
    fmt.read_image(data)  # the flash task exceeds max_model_size: allowed
    with pytest.raises(ImageError, match="maximum sizes"):
        fmt.read_image(_patch_task(data, 1, "flags", 0))  # as a rebuild task it is not


# --- the choice (backend/execute.py), synthetic costs: no TFLM ------------------------------


def _costs():
    return [
        execute.TaskCost("a", 200_000, 10_000, 80_000, largest_decoded=70_000),
        execute.TaskCost("b", 150_000, 50_000, 70_000, largest_decoded=20_000),
        execute.TaskCost("c", 40_000, 20_000, 30_000, largest_decoded=10_000),
        execute.TaskCost("d", 100_000, 5_000, 0, ["SVDF reads a coded weight at input 1"]),
    ]


def test_auto_without_a_budget_keeps_rebuild():
    flags, why = execute.choose(_costs(), execute.parse_execute([]), 0)
    assert flags == [False] * 4 and all(w.startswith("rebuild") for w in why)


def test_auto_moves_the_largest_saving_first_until_it_fits():
    costs = _costs()
    need = [execute.firmware_need(costs, f, 4096) for f in ([False] * 4, [True, 0, 0, 0])]
    assert need == [200_000 + 50_000 + 4096, 150_000 + 80_000 + 4096]
    flags, why = execute.choose(costs, execute.parse_execute([], sram=240_000), 4096)
    assert flags == [True, False, False, False]  # a saves 130 KB, b 130 KB - 0: a first (name)
    assert "flash (auto" in why[0] and "rebuild" in why[3]
    flags, _ = execute.choose(costs, execute.parse_execute([], sram=120_000), 4096)
    assert flags == [True, True, True, False]  # d cannot: SVDF
    assert execute.firmware_need(costs, flags, 4096) == 100_000 + 80_000 + 4096
    flags, why = execute.choose(costs, execute.parse_execute([], sram=10**6), 4096)
    assert flags == [False] * 4 and "fits --sram" in why[0]


def test_explicit_modes_and_blocked_tasks():
    costs = _costs()
    e = execute.parse_execute(["flash", "b=rebuild"])
    flags, why = execute.choose(costs, e, 0)
    assert flags == [True, False, True, False]
    assert "SVDF" in why[3]
    assert execute.parse_execute(["c=flash"]).mode_of("c") == "flash"
    for bad in (["fast"], ["=flash"], ["a=sometimes"]):
        with pytest.raises(YonocError, match="--execute"):
            execute.parse_execute(bad)
    with pytest.raises(YonocError, match="unknown task"):
        execute.choose(costs, execute.parse_execute(["zz=flash"]), 0)


# --- the CLI, end to end -------------------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory, small_built):
    d = tmp_path_factory.mktemp("flash")
    out = {"rebuild": small_built / "image.bin"}  # the same two models in rebuild mode
    for name, extra in (
        ("flash", ["--execute", "flash", "--emit-c", d / "c"]),
        ("flash2", ["--execute", "flash"]),
    ):
        out[name] = d / f"{name}.bin"
        # the second flash build in a process of its own: the same bytes across processes
        run = run_yonoc if name == "flash2" else yonoc_in_process
        run("build", *TWO, "-o", out[name], *QUICK, "-j", "1", *extra)
    out["dir"] = d
    return out


def test_same_inputs_give_a_byte_identical_flash_image(images):
    assert images["flash"].read_bytes() == images["flash2"].read_bytes()


def test_flash_image_tasks_and_extract(images):
    reb = fmt.read_image(images["rebuild"].read_bytes())
    fl = fmt.read_image(images["flash"].read_bytes())
    assert all(t.flash for t in fl.tasks) and not any(t.flash for t in reb.tasks)
    assert fl.max_model_size == 0 and reb.max_model_size > 0
    for i, t in enumerate(fl.tasks):
        assert t.arena_size > reb.tasks[i].arena_size
        assert len(fmt.rebuild(fl, i)) < len(fmt.rebuild(reb, i))
    run_yonoc("extract", images["flash"], "-o", images["dir"] / "x")
    for i, t in enumerate(fl.tasks):
        assert (images["dir"] / "x" / f"{t.name}.tflite").read_bytes() == fmt.rebuild(fl, i)


def test_inspect_json_shows_modes_and_sram(images):
    r = {
        k: json.loads(run_yonoc("inspect", images[k], "--json").stdout)
        for k in ("rebuild", "flash")
    }
    for m in r["flash"]["models"]:
        assert m["execute"] == "flash" and m["sram_model_bytes"] == 0
        assert m["sram_bytes"] == m["arena_bytes"] and m["tensors_compressed"] > 0
    for m in r["rebuild"]["models"]:
        assert m["execute"] == "rebuild"
        assert m["sram_bytes"] == fmt.align(m["rebuilt_bytes"]) + m["arena_bytes"]
    fs, rs = r["flash"]["sram"], r["rebuild"]["sram"]
    assert fs["model_region_bytes"] == 0
    assert fs["total_bytes"] == fs["arena_bytes"] + fs["codeword_cache_bytes"]
    assert fs["total_bytes"] < rs["total_bytes"]
    # the same weights either way
    for a, b in zip(r["flash"]["models"], r["rebuild"]["models"]):
        assert (a["weight_bytes"], a["tensors_compressed"]) == (
            b["weight_bytes"],
            b["tensors_compressed"],
        )
    text = run_yonoc("inspect", images["flash"]).stdout
    assert "flash" in text and "every task runs from flash" in text


def test_generated_header_gives_modes_and_sram(images):
    h = (images["dir"] / "c" / "app_image.h").read_text()
    fl = fmt.read_image(images["flash"].read_bytes())
    assert "#define APP_MODEL_REGION_SIZE 0u" in h
    for t in fl.tasks:
        ident = t.name.upper()
        assert f"#define APP_{ident}_EXECUTE_FLASH 1" in h
        assert f"#define APP_{ident}_SRAM_SIZE {fmt.align(t.arena_size)}u" in h


def test_sram_budget_picks_flash_only_when_needed(images, tmp_path):
    rs = json.loads(run_yonoc("inspect", images["rebuild"], "--json").stdout)["sram"]
    fs = json.loads(run_yonoc("inspect", images["flash"], "--json").stdout)["sram"]
    base = ["build", *TWO, *QUICK, "-j", "1"]
    # (a budget of the rebuild figure keeps rebuild mode: test_auto_moves_the_largest_...)
    tight = tmp_path / "tight.bin"
    yonoc_in_process(*base, "-o", tight, "--sram", str(rs["total_bytes"] - 1))
    img = fmt.read_image(tight.read_bytes())
    assert any(t.flash for t in img.tasks)
    from yonoc.budget import firmware_sram

    assert firmware_sram(img).total <= rs["total_bytes"] - 1
    r = yonoc_in_process(
        *base, "-o", tmp_path / "no.bin", "--sram", str(fs["total_bytes"] - 1), check=False
    )
    assert r.returncode == 7 and "SRAM" in r.stderr and not (tmp_path / "no.bin").exists()


def test_add_appends_a_rebuild_task_to_a_flash_image(images, tmp_path):
    out = tmp_path / "added.bin"
    yonoc_in_process(
        "add",
        images["flash"],
        ADDED,
        "-o",
        out,
        *QUICK,
    )
    old, new = images["flash"].read_bytes(), out.read_bytes()
    assert new[64 : len(old)] == old[64:]
    img = fmt.read_image(new)
    assert [t.flash for t in img.tasks] == [True, True, False]
    assert img.max_model_size == img.tasks[2].model_size
    assert struct.unpack_from("<H", new, 4)[0] == spec.FORMAT_VERSION == 4
    assert np.frombuffer(fmt.rebuild(img, 2)[4:8], np.uint8).tobytes() == b"TFL3"
    # the flash tasks' records give `add` the image's codebooks: the same task as on the
    # rebuild-mode image (same codebooks, same codes)
    out2 = tmp_path / "added2.bin"
    yonoc_in_process(
        "add",
        images["rebuild"],
        ADDED,
        "-o",
        out2,
        *QUICK,
    )
    other = fmt.read_image(out2.read_bytes())
    assert fmt.rebuild(img, 2) == fmt.rebuild(other, 2)
    assert any(f.kind == fmt.FillKind.PQ for f in img.tasks[2].fills)


def test_spec_execute_keys(tmp_path):
    from yonoc.spec import load_spec

    spec = tmp_path / "s.toml"
    spec.write_text(
        '[build]\nexecute = "flash"\n[[model]]\npath = "a.tflite"\n'
        '[[model]]\npath = "b.tflite"\nexecute = "rebuild"\n'
    )
    s = load_spec(str(spec))
    assert s.execute == ("flash", "b=rebuild") and "execute" not in s.build
    e = execute.parse_execute(s.execute + ("a=auto",))
    assert (e.mode_of("a"), e.mode_of("b"), e.mode_of("c")) == ("auto", "rebuild", "flash")
    spec.write_text('[[model]]\npath = "a.tflite"\nexecute = "sometimes"\n')
    with pytest.raises(YonocError, match="execute must be one of"):
        load_spec(str(spec))


def test_converting_the_rebuild_image_gives_the_flash_build(images):
    reb = fmt.read_image(images["rebuild"].read_bytes())
    flash_image = execute.convert(reb, execute.parse_execute(["flash"]))
    assert flash_image == images["flash"].read_bytes()


def test_inspect_tensors_lists_a_flash_task_s_coded_weights(images):
    rows = {
        k: json.loads(run_yonoc("inspect", images[k], "--json", "--tensors").stdout)["models"]
        for k in ("rebuild", "flash")
    }
    for a, b in zip(rows["rebuild"], rows["flash"]):
        key = lambda r: (r["operator"], r["shape"], r["rate"], r["bytes_before"], r["bytes_after"])  # noqa: E731
        assert sorted(map(key, a["tensors"])) == sorted(map(key, b["tensors"]))

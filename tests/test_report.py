"""`yonoc report`: the HTML page renders, is self-contained, its SVG is well-formed XML and the
numbers it shows are the ones `inspect --json` gives."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from conftest import QUICK, small_models, yonoc_in_process

MODELS = small_models()
SVG = "{http://www.w3.org/2000/svg}"


class _Page(HTMLParser):
    """Collects data-key cells (per data-model row, or page level) and headings' tensor counts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.values, self.tensors, self.stack, self.model, self.key = {}, {}, [], None, None
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("tr", "h3") and "data-model" in a:
            self.model = a["data-model"]
        if tag == "h3" and "data-tensors" in a:
            self.tensors[a["data-model"]] = int(a["data-tensors"])
        if "data-key" in a:
            self.key, self.text = a["data-key"], []

    def handle_data(self, data):
        if self.key:
            self.text.append(data)

    def handle_endtag(self, tag):
        if self.key and tag in ("td", "b"):
            table = self.values.setdefault(self.model if tag == "td" else None, {})
            table.setdefault(self.key, "".join(self.text).strip())
            self.key = None
        if tag == "tr":
            self.model = None


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    p = tmp_path_factory.mktemp("report") / "image.bin"
    yonoc_in_process("build", *MODELS, "-o", p, "-j", "1")
    return p


def _render(image, tmp_path, *opts):
    out = tmp_path / "report.html"
    yonoc_in_process("report", image, "-o", out, *opts)
    return out.read_text()


def test_report_numbers_match_inspect(image, tmp_path):
    html = _render(image, tmp_path, "--target", "stm32h747")
    r = json.loads(yonoc_in_process("inspect", image, "--json", "--tensors").stdout)
    page = _Page()
    page.feed(html)
    top = page.values[None]
    assert int(top["image_bytes"]) == r["image_bytes"]
    assert int(top["original_bytes"]) == r["original_bytes"]
    assert top["ratio_vs_int8_files"] == f"{r['ratio_vs_int8_files']:.2f}x"
    for m in r["models"]:
        row = page.values[m["name"]]
        for key in ("original_bytes", "image_bytes", "sram_model_bytes", "arena_bytes"):
            assert int(row[key]) == m[key], (m["name"], key)
        assert row["snr_db"] == f"{m['snr_db']:.1f} dB"
        assert row["agreement"] == f"{100 * m['agreement']:.1f}%"
        by_rate = {}
        for t in m["tensors"]:
            by_rate[t["rate"]] = by_rate.get(t["rate"], 0) + t["bytes_after"]
        stored = sum(
            int(v) for k, v in row.items() if k.startswith("bytes_") and k != "bytes_other"
        )
        assert set(by_rate) <= {k.removeprefix("bytes_") for k in row}
        assert stored == sum(by_rate.values())
        assert int(row["bytes_raw"]) == by_rate.get("raw", 0)
        assert stored + int(row["bytes_other"]) == m["image_bytes"]
        assert page.tensors[m["name"]] == len(m["tensors"]) > 0
    assert "stm32h747" in html and "KB free" in html


def test_report_is_self_contained_with_well_formed_svg(image, tmp_path):
    html = _render(image, tmp_path)
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)=", html)
    assert re.findall(r"https?://[^\"']+", html) == ["http://www.w3.org/2000/svg"] * html.count(
        "<svg "
    )
    svgs = re.findall(r"<svg .*?</svg>", html, re.S)
    assert len(svgs) >= 5
    r = json.loads(yonoc_in_process("inspect", image, "--json", "--tensors").stdout)
    charts = {}
    for s in svgs:
        root = ET.fromstring(s)  # strict XML: a malformed chart fails here
        charts[root.get("aria-label")] = root
        for rect in root.iter(f"{SVG}rect"):
            assert float(rect.get("width")) >= 0
    for m in r["models"]:
        # one grey (int8) and one coloured (stored) bar per weight tensor
        rects = list(charts[f"weight tensors of {m['name']}"].iter(f"{SVG}rect"))
        assert len(rects) == 2 * len(m["tensors"])
        stored = [float(x.get("width")) for x in rects[1::2]]
        before = [float(x.get("width")) for x in rects[0::2]]
        assert all(a <= b + 1e-6 for a, b in zip(stored, before))


def test_report_flags_an_overrun_budget_and_missing_notes(tmp_path):
    bare = tmp_path / "bare.bin"
    yonoc_in_process("build", *MODELS, "-o", bare, "--no-notes", *QUICK, "-j", "1")
    html = _render(bare, tmp_path, "--flash", str(bare.stat().st_size - 1))
    assert "OVER" in html and "no build notes" in html


def test_report_bad_image_is_exit_4_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"YONO" + bytes(100))
    p = yonoc_in_process("report", bad, "-o", tmp_path / "r.html", check=False)
    assert p.returncode == 4 and p.stderr.startswith("yonoc: error:")
    assert not (tmp_path / "r.html").exists()

"""`yonoc build --emit-c`: generated C/C++ compiles cleanly, is deterministic, links twice.

The compile tests need g++ (skipped without it). The op resolver header is compiled against a
stub of TFLM's MicroMutableOpResolver (so no TFLM is needed); set YONO_TFLM_INCLUDE to TFLM's
include directories (os.pathsep-separated: the TFLM tree, flatbuffers/include, gemmlowp, ruy)
to compile it against the real TFLM headers as well.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from yonoc.backend import codegen
from yonoc.errors import YonocError

from conftest import example_models, shared_models, yonoc_in_process

GXX = shutil.which("g++")
GCC = shutil.which("gcc")
needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ not installed")
CXXFLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def _build(tmp, name, models, prefix, *extra):
    out = tmp / name
    out.mkdir()
    yonoc_in_process(
        "build",
        *models,
        "-o",
        out / "image.bin",
        "-j",
        "1",
        "--mode",
        "int8",
        "--no-check",
        "--emit-c",
        out,
        "--prefix",
        prefix,
        *extra,
    )
    return out


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("codegen")
    models = example_models()
    return (_build(tmp, "a", models, "alpha"), _build(tmp, "b", models[:1], "beta"))


def _compile(args, cwd):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, args))}\n{proc.stderr}"
    return proc


def _stub_tflm(root):
    """A stand-in for tensorflow/lite/micro/micro_mutable_op_resolver.h with every method the
    generator may call, so the generated resolver compiles without TFLM."""
    d = root / "tensorflow" / "lite" / "micro"
    d.mkdir(parents=True, exist_ok=True)
    methods = sorted(set(codegen.BUILTIN_OPS.values()) | set(codegen.CUSTOM_OPS.values()))
    body = "\n".join(f"  TfLiteStatus {m}() {{ ++count; return kTfLiteOk; }}" for m in methods)
    (d / "micro_mutable_op_resolver.h").write_text(
        "#pragma once\n"
        "typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;\n"
        "namespace tflite {\n"
        "template <unsigned int tOpCount>\nclass MicroMutableOpResolver {\n public:\n"
        f"{body}\n  unsigned int count = 0;\n}};\n}}  // namespace tflite\n"
    )
    return root


def test_files_and_contents(two_images):
    a, _ = two_images
    names = sorted(p.name for p in a.iterdir() if p.suffix in (".h", ".cc"))
    assert names == ["alpha_image.cc", "alpha_image.h", "alpha_ops.h"]
    h = (a / "alpha_image.h").read_text()
    image = (a / "image.bin").read_bytes()
    assert f"#define ALPHA_IMAGE_SIZE {len(image)}u" in h
    assert f"#define ALPHA_TASK_COUNT {len(example_models())}u" in h
    assert "ALPHA_TASK_DIGITS_MLP = 0," in h
    assert "tensorflow" not in h.split("//")[0] and '#include "tensorflow' not in h
    cc = (a / "alpha_image.cc").read_text()
    assert '#include "tensorflow' not in cc
    assert "alignas(16) ALPHA_IMAGE_ATTRIBUTES const uint8_t alpha_image[ALPHA_IMAGE_SIZE]" in cc
    # the array holds the image byte for byte
    body = cc[cc.index("alpha_image[ALPHA_IMAGE_SIZE] = {") :]
    values = bytes(int(x, 16) for x in re.findall(r"0x([0-9a-f]{2}),", body))
    assert values == image
    ops = (a / "alpha_ops.h").read_text()
    from yonoc.frontend import read_model

    used = sorted({op for p in example_models() for op in read_model(p).operators})
    assert f"#define ALPHA_OP_COUNT {len(used)}u" in ops
    assert ops.count("resolver.Add") == len(used)
    for m in ("AddAdd", "AddConv2D", "AddFullyConnected", "AddMean"):
        assert f"resolver.{m}()" in ops


def test_sram_macros(two_images):
    """int8 images have no codebooks: no codeword cache; the SRAM total is region + arena, and
    the arena is measured even though the images were built with --no-check."""
    from yonoc.backend.image_format import read_image

    a, _ = two_images
    h = (a / "alpha_image.h").read_text()
    img = read_image((a / "image.bin").read_bytes())
    region = (img.max_model_size + 15) // 16 * 16
    assert img.max_arena_size > 0 and "#define ALPHA_TENSOR_ARENA_MEASURED 1" in h
    assert "#define ALPHA_CODEWORD_CACHE_SIZE 0u" in h
    assert f"#define ALPHA_SRAM_SIZE {region + img.max_arena_size}u" in h


def test_deterministic(tmp_path, two_images):
    a, _ = two_images
    again = _build(tmp_path, "again", example_models(), "alpha")
    for name in ("alpha_image.h", "alpha_image.cc", "alpha_ops.h", "image.bin"):
        assert (again / name).read_bytes() == (a / name).read_bytes(), name
    image = (a / "image.bin").read_bytes()
    assert codegen.generate(image, "alpha").files == codegen.generate(image, "alpha").files
    assert not [p for p in again.iterdir() if p.name.startswith(".yonoc-")]  # no temp files


@needs_gxx
def test_image_compiles_without_tflm(two_images, tmp_path):
    a, _ = two_images
    _compile([GXX, *CXXFLAGS, "-c", a / "alpha_image.cc", "-o", tmp_path / "a.o"], tmp_path)
    # with the image in its own section
    _compile(
        [
            GXX,
            *CXXFLAGS,
            '-DYONO_IMAGE_SECTION=".rodata.yono"',
            "-c",
            a / "alpha_image.cc",
            "-o",
            tmp_path / "s.o",
        ],
        tmp_path,
    )
    objdump = shutil.which("objdump")
    if objdump:
        out = subprocess.run(
            [objdump, "-h", tmp_path / "s.o"], capture_output=True, text=True
        ).stdout
        assert ".rodata.yono" in out


@pytest.mark.skipif(GCC is None, reason="gcc not installed")
def test_header_is_plain_c(two_images, tmp_path):
    a, _ = two_images
    src = tmp_path / "use.c"
    src.write_text(
        '#include "alpha_image.h"\n'
        "unsigned first_input_bytes(void) {\n"
        "  return alpha_tasks[ALPHA_TASK_DIGITS_MLP].inputs[0].bytes\n"
        "         + ALPHA_DIGITS_MLP_INPUT0_BYTES + alpha_image[0];\n}\n"
    )
    _compile(
        [
            GCC,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-I",
            a,
            "-c",
            src,
            "-o",
            tmp_path / "use.o",
        ],
        tmp_path,
    )


@needs_gxx
def test_two_prefixes_link_into_one_program(two_images, tmp_path):
    a, b = two_images
    stub = _stub_tflm(tmp_path / "stub")
    main = tmp_path / "main.cc"
    main.write_text(r"""
#include <cstdio>
#include <cstring>
#include "alpha_image.h"
#include "alpha_ops.h"
#include "beta_image.h"
#include "beta_ops.h"
int main() {
  alpha_op_resolver ra;
  beta_op_resolver rb;
  if (alpha_register_ops(ra) != kTfLiteOk || beta_register_ops(rb) != kTfLiteOk) return 1;
  if (ra.count != ALPHA_OP_COUNT || rb.count != BETA_OP_COUNT) return 2;
  if (std::memcmp(alpha_image, "YONO", 4) != 0 || std::memcmp(beta_image, "YONO", 4) != 0)
    return 3;
  if (alpha_image_size != ALPHA_IMAGE_SIZE || beta_image_size != BETA_IMAGE_SIZE) return 4;
  if ((reinterpret_cast<unsigned long>(alpha_image) & 15u) ||
      (reinterpret_cast<unsigned long>(beta_image) & 15u)) return 5;
  std::printf("%s %s %u %u\n", alpha_tasks[0].name, beta_tasks[0].name,
              (unsigned)ALPHA_TENSOR_ARENA_SIZE, (unsigned)BETA_TASK_COUNT);
  return 0;
}
""")
    exe = tmp_path / "two"
    _compile(
        [
            GXX,
            *CXXFLAGS,
            "-I",
            a,
            "-I",
            b,
            "-I",
            stub,
            main,
            a / "alpha_image.cc",
            b / "beta_image.cc",
            "-o",
            exe,
        ],
        tmp_path,
    )
    out = subprocess.run([exe], capture_output=True, text=True)
    assert out.returncode == 0, out
    assert out.stdout.split()[:2] == ["digits_mlp", "digits_mlp"]


@needs_gxx
def test_same_prefix_twice_clashes(two_images, tmp_path):
    """Negative control for the test above: without distinct prefixes the link fails."""
    _, b = two_images
    main = tmp_path / "m.cc"
    main.write_text("int main() { return 0; }\n")
    proc = subprocess.run(
        [GXX, "-std=c++17", main, b / "beta_image.cc", b / "beta_image.cc", "-o", tmp_path / "x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "multiple definition" in proc.stderr


@needs_gxx
@pytest.mark.skipif(
    not os.environ.get("YONO_TFLM_INCLUDE"), reason="YONO_TFLM_INCLUDE (TFLM include dirs) not set"
)
def test_ops_compile_against_real_tflm(two_images, tmp_path):
    a, _ = two_images
    incs = [x for d in os.environ["YONO_TFLM_INCLUDE"].split(os.pathsep) for x in ("-isystem", d)]
    src = tmp_path / "ops.cc"
    src.write_text(
        '#include "alpha_ops.h"\n'
        "TfLiteStatus reg(alpha_op_resolver& r) { return alpha_register_ops(r); }\n"
    )
    _compile(
        [
            GXX,
            *CXXFLAGS,
            "-DTF_LITE_STATIC_MEMORY",
            *incs,
            "-I",
            a,
            "-c",
            src,
            "-o",
            tmp_path / "ops.o",
        ],
        tmp_path,
    )


@pytest.mark.skipif(not shared_models(), reason="../shared/models not present")
def test_every_shared_model_op_is_mapped(int8_built, tmp_path):
    """Builtins and TFLM's signal custom ops of all third-party models have a resolver entry."""
    ops = (int8_built / "all_ops.h").read_text()
    assert "resolver.AddWindow()" in ops and "resolver.AddUnidirectionalSequenceLSTM()" in ops
    n = int(re.search(r"#define ALL_OP_COUNT (\d+)u", ops).group(1))
    assert n == ops.count("!= kTfLiteOk) return kTfLiteError;")
    if GXX:
        _compile(
            [GXX, *CXXFLAGS, "-c", int8_built / "all_image.cc", "-o", tmp_path / "s.o"], tmp_path
        )


def _task(name, ops):
    return codegen.TaskDesc(0, name, codegen._ident(name), 1, 0, 0, [], [], ops)


def test_unknown_operator_is_a_clear_error():
    with pytest.raises(YonocError) as e:
        codegen.resolver_ops(
            [_task("m1", ["CONV_2D", "CUSTOM:MyFancyOp"]), _task("m2", ["BUILTIN_250"])]
        )
    msg = str(e.value)
    assert "CUSTOM:MyFancyOp (in m1)" in msg and "BUILTIN_250 (in m2)" in msg
    ops = codegen.resolver_ops([_task("a", ["CUSTOM:SignalRfft", "ADD"]), _task("b", ["ADD"])])
    assert [(o.name, o.method, o.tasks) for o in ops] == [
        ("ADD", "AddAdd", ["a", "b"]),
        ("CUSTOM:SignalRfft", "AddRfft", ["a"]),
    ]


@pytest.mark.parametrize("prefix", ["1abc", "a-b", "__x"])
def test_bad_prefix_rejected_before_building(prefix, tmp_path):
    proc = yonoc_in_process(
        "build",
        *example_models(),
        "-o",
        tmp_path / "i.bin",
        "--no-check",
        "--emit-c",
        tmp_path,
        "--prefix",
        prefix,
        check=False,
    )
    assert proc.returncode == 2 and "--prefix" in proc.stderr
    assert not (tmp_path / "i.bin").exists()


def test_check_prefix():
    for bad in ("", "a b", "_Abc", "x;y"):
        with pytest.raises(YonocError):
            codegen.check_prefix(bad)
    assert codegen.check_prefix("app_2") == "app_2"


def test_task_identifiers():
    assert codegen._ident("ic_fdmobilenet_0.25_128") == "IC_FDMOBILENET_0_25_128"
    assert codegen._ident("9lives") == "T9LIVES"
    assert codegen._c_string('a"b\\c\u00e9') == '"a\\"b\\\\c\\303\\251"'
    assert codegen._c_comment("a\\\nb\u00e9") == "a??b?"  # no line continuation in a // comment


@pytest.mark.parametrize("x", [0.0, 3.921569e-03, 1.0 / 3.0, 1e-30, 12345.678, 2.0, -0.5])
def test_float_literals_round_trip(x):
    lit = codegen._float_literal(x)
    assert lit.endswith("f")
    assert np.float32(float(lit[:-1])) == np.float32(x)

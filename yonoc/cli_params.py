"""Option types and validators of the `yonoc` command line: every bad value is refused while
click parses (exit 2, one line), before any long work starts."""

from __future__ import annotations

import math
import os
import re

import click

from .pq.codebooks import CodebookOptions, group_rates


class Size(click.ParamType):
    """Bytes: 1048576, 0x100000, 512K, 512KiB, 512KB, 1M, 1.5M (K = 1024). Passed on as a
    decimal string (budget.resolve takes strings)."""

    name = "size"
    _UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}

    def get_metavar(self, param, ctx=None):
        return "SIZE"

    def convert(self, value, param, ctx):
        text = str(value).strip()
        m = re.fullmatch(r"(0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?[bB])?", text)
        if not m:
            self.fail(
                f"{value!r}: expected a size such as 1M, 512K, 512KiB, 0x80000 or 1048576",
                param,
                ctx,
            )
        num = int(m.group(1), 16) if m.group(1).lower().startswith("0x") else float(m.group(1))
        n = int(num * self._UNITS[m.group(2).lower()])
        if n <= 0:
            self.fail(f"{value!r}: a size must be positive", param, ctx)
        return str(n)


class Fraction(click.ParamType):
    """Agreement target: a fraction 0..1, or a percentage: 99, 99.5 or "99%". A value above 1
    is a percentage; 1 means 100 %."""

    name = "fraction"

    def get_metavar(self, param, ctx=None):
        return "F|P%"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        text = str(value).strip()
        pct = text.endswith("%")
        try:
            v = float(text.rstrip("%").strip())
        except ValueError:
            self.fail(
                f"{value!r}: expected a fraction such as 0.99 or a percentage such as 99 or 99%",
                param,
                ctx,
            )
        if pct or v > 1:
            v /= 100.0
        if not 0.0 <= v <= 1.0:
            self.fail(f"{value!r}: must be 0..1 or 0..100%", param, ctx)
        return v


def finite(ctx, param, value):
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value}: must be a finite number")
    return value


def out_file(ctx, param, value):
    """An output file's directory must exist before the (long) build, not after."""
    if value is None:
        return value
    if os.path.isdir(value):
        raise click.BadParameter(f"{value}: is a directory")
    d = os.path.dirname(os.path.abspath(value))
    if not os.path.isdir(d):
        raise click.BadParameter(f"{value}: directory {d} does not exist")
    if not os.access(d, os.W_OK):
        raise click.BadParameter(f"{value}: directory {d} is not writable")
    return value


def output_file_opt(help_text: str):
    """`-o/--output FILE`, required, checked by `out_file` before any work (build, add, report,
    codebooks learn)."""
    return click.option(
        "-o",
        "--output",
        required=True,
        type=click.Path(dir_okay=False),
        callback=out_file,
        help=help_text,
    )


def out_dir(ctx, param, value):
    """--emit-c: an existing directory, or one whose parent exists (it is created)."""
    if value is None:
        return value
    if os.path.exists(value) and not os.path.isdir(value):
        raise click.BadParameter(f"{value}: exists and is not a directory")
    if not os.path.isdir(value):
        parent = os.path.dirname(os.path.abspath(value))
        if not os.path.isdir(parent):
            raise click.BadParameter(f"{value}: parent directory {parent} does not exist")
    return value


def parse_subvectors(values) -> dict:
    """--subvector-lengths A=4,2 ... onto the default rates."""
    overrides = {}
    for v in values:
        g, _, rest = v.partition("=")
        try:
            overrides[g] = [int(x) for x in rest.split(",")]
        except ValueError:
            overrides[g] = rest
    try:
        return group_rates(CodebookOptions().subvector_lengths, overrides)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--subvector-lengths'") from None


def codebook_options(codewords, subvector_lengths, seed) -> CodebookOptions:
    if not 1 <= codewords <= 256:
        raise click.BadParameter("--codewords must be 1..256 (indices are one byte)")
    return CodebookOptions(
        codewords=codewords, subvector_lengths=parse_subvectors(subvector_lengths), seed=seed
    )


def parse_samples(values) -> tuple:
    out = []
    for v in values:
        name, _, path = v.partition("=")
        if not name or not path:
            raise click.BadParameter(f"{v!r}: expected MODEL=FILE.npy", param_hint="'--samples'")
        if not path.endswith((".npy", ".npz")):
            raise click.BadParameter(
                f"{v!r}: samples are a .npy file (or an .npz with array 'x')",
                param_hint="'--samples'",
            )
        if not os.path.isfile(path):
            raise click.BadParameter(f"{path}: no such file", param_hint="'--samples'")
        out.append((name, path))
    return tuple(out)


def models_arg(f):
    return click.argument("models", nargs=-1, type=click.Path(dir_okay=False))(f)


def codebook_opts(f):
    f = click.option(
        "--seed",
        default=0,
        show_default=True,
        type=click.IntRange(0, 2**31 - 1),
        help="k-means seed.",
    )(f)
    f = click.option(
        "--subvector-lengths",
        "subvector_lengths",
        multiple=True,
        metavar="G=S[,S..]",
        help="Rates per group, e.g. A=4,2 (group A: 3x3 kernels, B: the rest); "
        "bits per weight = 8/S.",
    )(f)
    f = click.option(
        "--codewords",
        default=256,
        show_default=True,
        type=click.IntRange(1, 256),
        help="K codewords per sub-codebook (indices are one byte).",
    )(f)
    return f


def fidelity_opts(f):
    """The data-free fidelity target and how it is met (build, add)."""
    f = click.option(
        "--fallback",
        type=click.Choice(["sensitivity", "eq3"]),
        default="sensitivity",
        show_default=True,
        help="How the fidelity pass picks what to keep finer/raw.",
    )(f)
    f = click.option("--no-check", is_flag=True, help="No TFLM fidelity check (and no fallback).")(
        f
    )
    f = click.option(
        "--min-agreement",
        default="0.99",
        show_default=True,
        type=Fraction(),
        help="Top-1 agreement target on real samples: 0.99, 99 or 99% (a value above 1 "
        "is a percentage).",
    )(f)
    f = click.option(
        "--snr", default=20.0, show_default=True, callback=finite, help="Output SNR target in dB."
    )(f)
    return f


def budget_opts(f):
    """Flash/SRAM budget: a preset and/or explicit sizes (build, add, report)."""
    from .budget import TARGETS

    f = click.option(
        "--sram",
        type=Size(),
        help="SRAM budget for what the firmware allocates (largest model region + largest "
        "tensor arena + codeword cache), e.g. 512K.",
    )(f)
    f = click.option(
        "--flash",
        type=Size(),
        help="Flash budget for the image: 1M, 512K, 512KiB, 0x80000 or bytes.",
    )(f)
    f = click.option(
        "--target",
        type=click.Choice(sorted(TARGETS), case_sensitive=False),
        help="MCU preset whose flash/SRAM the image must fit (or is drawn against).",
    )(f)
    return f

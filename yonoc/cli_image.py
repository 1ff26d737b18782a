"""`yonoc add` and `yonoc report`: commands that start from an existing image."""

from __future__ import annotations

import os

import click

from .cli import _guard, _read_image, main
from .cli_params import budget_opts, fidelity_opts, output_file_opt, parse_samples
from .options import MODES, BuildOptions
from .passes.fidelity import FidelityTarget


@main.command(short_help="Append a model to an image (OTA-friendly).")
@click.argument("image", type=click.Path(dir_okay=False))
@click.argument("model", type=click.Path(dir_okay=False))
@output_file_opt("New image: IMAGE's bytes with the header rewritten and MODEL appended.")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="yono",
    show_default=True,
    help="As for build (the image's codebooks are used frozen whatever the mode).",
)
@click.option(
    "--samples",
    multiple=True,
    metavar="MODEL=FILE.npy",
    help="Real sample inputs for the model (as for build).",
)
@fidelity_opts
@click.option("--keep-names", is_flag=True, help="Keep tensor names in the rebuilt model.")
@click.option("--kernel-major", is_flag=True, help="Vectorise 3x3 kernels spatially.")
@click.option("--no-notes", "no_notes", is_flag=True, help="Write the new image without notes.")
@click.option(
    "--encode",
    "encode_mode",
    default="output+bias",
    show_default=True,
    type=click.Choice(["nearest", "output", "output+bias"], case_sensitive=False),
    help="Codeword choice in the image's codebooks, as for build.",
)
@budget_opts
@_guard
def add(
    image,
    model,
    output,
    mode,
    samples,
    snr,
    min_agreement,
    no_check,
    fallback,
    keep_names,
    kernel_major,
    no_notes,
    encode_mode,
    target,
    flash,
    sram,
):
    """Code MODEL with IMAGE's frozen codebooks and append it as the last task (OTA-friendly:
    only the 64-byte header of IMAGE changes; everything new is appended)."""
    from . import budget, progress
    from .add import add as run_add
    from .backend.image_format import read_image
    from .fileio import read_input, write_atomic

    top_v, top_q = click.get_current_context().find_root().obj or (0, False)
    progress.setup(progress.level_for(top_v, top_q))
    limits = budget.resolve(target, flash, sram)
    opts = BuildOptions(
        mode=mode,
        target=FidelityTarget(snr, min_agreement),
        check=not no_check,
        fallback=fallback,
        samples=parse_samples(samples),
        erase_names=not keep_names,
        kernel_major=kernel_major,
        jobs=1,
        notes=not no_notes,
        encode=encode_mode.lower(),
    )
    old = read_input(image)
    new, result = run_add(old, model, opts)
    tasks = read_image(new).tasks
    budget.check(limits, new)
    write_atomic(output, new)
    click.echo(
        f"{output}: {len(new)} bytes (+{len(new) - len(old)}), task {len(tasks) - 1} "
        f"{result.name!r} appended; bytes 64..{len(old)} of {image} unchanged"
    )


@main.command(short_help="Write an HTML report of an image.")
@click.argument("image", type=click.Path(dir_okay=False))
@output_file_opt("HTML file to write (self-contained: inline SVG, no scripts).")
@budget_opts
@_guard
def report(image, output, target, flash, sram):
    """Write a one-page HTML report of IMAGE: sizes, rates, fidelity, flash/SRAM."""
    from . import budget
    from .fileio import write_atomic
    from .report import inspect_image
    from .report_html import render

    limits = budget.resolve(target, flash, sram)
    r = inspect_image(_read_image(image), tensors=True)
    write_atomic(output, render(r, limits, os.path.basename(image)).encode())
    click.echo(f"{output}: report of {len(r['models'])} models")

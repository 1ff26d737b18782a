"""The `yonoc` command line: build, inspect, extract, codebooks learn."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys

import click

from . import __version__
from .cli_params import (
    budget_opts,
    codebook_options,
    codebook_opts,
    fidelity_opts,
    models_arg,
    out_dir,
    out_file,
    output_file_opt,
    parse_samples,
)
from .errors import YonocError
from .options import MODES, BuildOptions
from .passes.fidelity import FidelityTarget

log = logging.getLogger("yonoc")

EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _error(msg: str, code: int):
    from .progress import clear_line

    clear_line()
    click.echo(f"yonoc: error: {msg}", err=True)
    sys.exit(code)


class _Main(click.Group):
    """Usage errors as one line (exit 2) and Ctrl-C as exit 130, also while click parses."""

    def main(self, args=None, prog_name="yonoc", **kwargs):
        try:
            rv = super().main(args, prog_name=prog_name, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.UsageError as e:
            hint = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
            _error(e.format_message() + hint, EXIT_USAGE)
        except click.ClickException as e:
            _error(e.format_message(), EXIT_USAGE)
        except (click.Abort, KeyboardInterrupt):
            interrupted()
        sys.exit(rv if isinstance(rv, int) else 0)


def interrupted() -> None:
    """Ctrl-C: one line and exit 130 now. os._exit, because a normal exit joins helper threads
    (multiprocessing feeders, executors) that may wait on dead workers; every output is written
    atomically and the workers are already killed (yonoc/workers.py), so nothing is left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .progress import clear_line

    clear_line()
    try:
        sys.stdout.flush()
    except Exception:
        pass
    sys.stderr.write("yonoc: interrupted\n")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def _guard(fn):
    """One-line errors with documented exit codes; never a traceback for user errors."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except YonocError as e:
            _error(str(e), e.exit_code)
        except click.ClickException as e:  # a bad option found while running
            _error(e.format_message(), EXIT_USAGE)
        except KeyboardInterrupt:
            interrupted()
        except MemoryError:
            click.echo("yonoc: error: out of memory", err=True)
            sys.exit(EXIT_INTERNAL)
        except Exception as e:  # a bug: say so in one line, traceback only on request
            if os.environ.get("YONOC_DEBUG"):
                raise
            click.echo(
                f"yonoc: internal error: {type(e).__name__}: {e} "
                "(set YONOC_DEBUG=1 for a traceback)",
                err=True,
            )
            sys.exit(EXIT_INTERNAL)

    return wrapper


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="yonoc")
@click.option(
    "-v", "--verbose", count=True, help="-v: details (fidelity steps, EM, epochs), -vv: debug."
)
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def main(verbose, quiet):
    """yonoc: compress many int8 TFLite models into one flash image (YONO)."""
    from . import progress

    progress.setup(progress.level_for(verbose, quiet))
    click.get_current_context().obj = (verbose, quiet)


@main.command(short_help="Compress MODELS into one flash image.")
@models_arg
@output_file_opt("Image file to write.")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="yono",
    show_default=True,
    help="yono: shared codebooks + fidelity-driven fallback (EM finetuning, "
    "Algorithm 1, for models with data); pq-mopt: EM with first/last layers "
    "only; pq-m: shared, no fallback; pq-s: per-model codebooks; int8: models "
    "as they are.",
)
@click.option(
    "--codebooks",
    "frozen",
    type=click.Path(dir_okay=False, exists=True),
    help="Frozen codebooks (.npz from `yonoc codebooks learn`) instead of learning.",
)
@codebook_opts
@click.option(
    "--samples",
    multiple=True,
    metavar="MODEL=FILE.npy",
    help="Real sample inputs for a model (default: <model>.sample.npy beside it, "
    "else generated inputs).",
)
@fidelity_opts
@click.option("--keep-names", is_flag=True, help="Keep tensor names in the rebuilt models.")
@click.option(
    "--kernel-major",
    is_flag=True,
    help="Vectorise kernels spatially (paper) instead of in memory order: "
    "+0.1-0.4 dB, slower task switch.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    callback=out_file,
    help="Also write the build report as JSON (strict: null for absent figures).",
)
@click.option(
    "--no-notes",
    "no_notes",
    is_flag=True,
    help="Leave the build notes (per-model/per-tensor fidelity for `inspect`, a few "
    "bytes per tensor) out of the image.",
)
@click.option(
    "--encode",
    "encode_mode",
    default="output+bias",
    show_default=True,
    type=click.Choice(["nearest", "output", "output+bias"], case_sensitive=False),
    help="Codeword choice: nearest in weight space, output-aware on calibration "
    "activations, or output-aware with bias correction.",
)
@budget_opts
@click.option(
    "--execute",
    "execute_modes",
    multiple=True,
    metavar="MODE|NAME=MODE",
    help="How tasks run: rebuild (model rebuilt into SRAM at a switch), flash (run in place, "
    "each coded weight decoded before its layer) or auto (default: rebuild unless --sram "
    "needs flash). For every task, or NAME=MODE for one (repeatable).",
)
# --- build spec / EM finetuning (yonoc/spec.py, passes/em.py)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, exists=True),
    help="Build spec (TOML): models, their train/test data, epsilon, options "
    "(docs/finetuning.md). Explicit flags override it.",
)
@click.option(
    "--finetune",
    "finetune",
    metavar="HOOK",
    help="Finetune hook for models with data: torch (default), module:callable or "
    "a yonoc.finetune entry point.",
)
@click.option(
    "--epsilon",
    type=click.FloatRange(0, 100),
    help="Allowed accuracy loss (percentage points) for models with data "
    "(default 1.0, or the spec's).",
)
@click.option(
    "-j",
    "--jobs",
    default=0,
    show_default=True,
    type=click.IntRange(0, 256),
    help="Worker processes for the per-model passes (0: one per core).",
)
@click.option(
    "--emit-c",
    "emit_c",
    type=click.Path(file_okay=False),
    callback=out_dir,
    help="Also write <prefix>_image.h/.cc and <prefix>_ops.h (TFLM op resolver) "
    "into this directory.",
)
@click.option(
    "--prefix",
    default="app",
    show_default=True,
    help="C identifier prefixing every generated symbol (with --emit-c).",
)
@click.option(
    "-v", "--verbose", count=True, help="-v: details (fidelity steps, EM, epochs), -vv: debug."
)
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@_guard
def build(
    models,
    output,
    mode,
    frozen,
    codewords,
    subvector_lengths,
    seed,
    samples,
    snr,
    min_agreement,
    no_check,
    fallback,
    keep_names,
    kernel_major,
    report_path,
    target,
    flash,
    sram,
    jobs,
    spec_path,
    finetune,
    epsilon,
    emit_c,
    prefix,
    verbose,
    no_notes,
    quiet,
    encode_mode,
    execute_modes,
):
    """Compress MODELS (.tflite) into one image (or the models of --spec)."""
    from . import progress

    top_v, top_q = click.get_current_context().find_root().obj or (0, False)
    progress.setup(progress.level_for(max(verbose, top_v), quiet or top_q))
    from . import budget
    from .compiler import build as run_build
    from .fileio import write_atomic

    limits = budget.resolve(target, flash, sram)
    if emit_c:
        from .backend.codegen import check_prefix

        check_prefix(prefix)  # fail before the (long) build, not after

    opts = BuildOptions(
        mode=mode,
        codebook=codebook_options(codewords, subvector_lengths, seed),
        frozen_codebooks=frozen,
        target=FidelityTarget(snr, min_agreement),
        check=not no_check,
        fallback=fallback,
        samples=parse_samples(samples),
        erase_names=not keep_names,
        kernel_major=kernel_major,
        jobs=jobs,
        notes=not no_notes,
        encode=encode_mode.lower(),
    )
    models = list(models)
    if spec_path or finetune or epsilon is not None:  # --- build spec / EM finetuning
        opts, models, spec_execute = _apply_spec(
            spec_path, opts, models, mode, frozen, finetune, epsilon
        )
        execute_modes = spec_execute + tuple(execute_modes)  # the command line's win
    from .backend.execute import parse_execute

    execution = parse_execute(execute_modes, limits.sram if limits else None)
    # an SRAM budget no image can meet fails before the build
    budget.precheck(limits, models, execution)
    result = run_build(models, opts, execution)
    budget.check(limits, result.image)  # what the firmware allocates (budget.firmware_sram)
    write_atomic(output, result.image)
    if report_path:
        write_atomic(
            report_path,
            json.dumps(strict(_build_report(result)), indent=2, allow_nan=False).encode(),
        )
    if emit_c:
        from .backend.codegen import emit_c as write_c

        write_c(result.image, emit_c, prefix)
    orig = sum(m.original_bytes for m in result.models)
    in_flash = sum(m.execute == "flash" for m in result.models)
    click.echo(
        f"{output}: {len(result.image)} bytes, {len(result.models)} models of {orig} "
        f"bytes ({orig / len(result.image):.2f}x) in {result.timings['total']:.1f} s"
        + (f"; {in_flash} run from flash (--execute)" if in_flash else "")
    )


def _apply_spec(spec_path, opts, models, mode, frozen, finetune, epsilon):
    """Merge a build spec (and --finetune / --epsilon) into the options and model list; flags
    given explicitly on the command line win over the spec."""
    from .spec import Spec, apply, load_spec

    ctx = click.get_current_context()
    cmdline = click.core.ParameterSource.COMMANDLINE
    explicit = {"finetune": finetune, "epsilon": epsilon}
    if ctx.get_parameter_source("mode") == cmdline:
        explicit["mode"] = mode
    if ctx.get_parameter_source("frozen") == cmdline:
        explicit["codebooks"] = frozen
    for key in ("snr", "min_agreement"):
        if ctx.get_parameter_source(key) == cmdline:
            explicit[key] = ctx.params[key]
    for key in ("codewords", "subvector_lengths"):  # already in opts.codebook: the spec's go
        if ctx.get_parameter_source(key) == cmdline:
            explicit[key] = opts.codebook.codewords if key == "codewords" else {}
    if ctx.get_parameter_source("encode_mode") == cmdline:
        explicit["encode"] = ctx.params["encode_mode"].lower()
    spec = load_spec(spec_path) if spec_path else Spec("", [], {}, (), ())
    return (
        apply(spec, opts, explicit),
        spec.models + [m for m in models if m not in spec.models],
        spec.execute,
    )


def strict(obj):
    """JSON-safe copy (Infinity/NaN -> null): strict parsers reject them."""
    from .report import strict as report_strict

    return report_strict(obj)


def _read_image(path: str):
    """A parsed image; its errors name the file (a user may pass several)."""
    from .backend.image_format import read_image
    from .errors import ImageError
    from .fileio import read_input

    data = read_input(path)
    try:
        return read_image(data)
    except ImageError as e:
        if str(e).startswith(path):
            raise
        raise ImageError(f"{path}: {e}") from None


def _build_report(result) -> dict:
    from dataclasses import asdict

    return {
        "image_bytes": len(result.image),
        "codebook_bytes": result.codebook_bytes,
        "timings_s": result.timings,
        "models": [asdict(m) for m in result.models],
    }


@main.command(short_help="Show an image's models, sizes, fidelity.")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Machine-readable output (strict JSON: null for infinite or absent figures).",
)
@click.option(
    "--tensors",
    is_flag=True,
    help="One row per weight tensor: operator, shape, group, rate, bytes, weight SNR, "
    "output noise when coded alone (with --json: a 'tensors' list per model).",
)
@click.option("--csv", "as_csv", is_flag=True, help="The per-tensor rows as CSV.")
@_guard
def inspect(image, as_json, tensors, as_csv):
    """Show what IMAGE holds: models, sizes, ratios, fidelity (from the build notes)."""
    from .report import format_report, format_tensors, inspect_image, strict, tensors_csv

    if as_json and as_csv:
        raise YonocError("--json and --csv: choose one")
    r = inspect_image(_read_image(image), tensors=tensors or as_csv)
    if as_csv:
        click.echo(tensors_csv(r), nl=False)
    elif as_json:
        click.echo(json.dumps(strict(r), indent=2, allow_nan=False))
    else:
        click.echo(format_tensors(r) if tensors else format_report(r))


@main.command(short_help="Rebuild every model of an image as .tflite.")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for <task>.tflite files.",
)
@_guard
def extract(image, output):
    """Rebuild every model of IMAGE as OUTPUT/<name>.tflite."""
    from .backend.image_format import rebuild
    from .fileio import write_atomic

    img = _read_image(image)
    models = [(t.name, rebuild(img, i)) for i, t in enumerate(img.tasks)]
    for name, _ in models:
        if os.sep in name or name in (".", "..") or (os.altsep and os.altsep in name):
            raise YonocError(f"task name {name!r} is not a safe file name")
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as e:
        raise YonocError(f"{output}: cannot create directory ({e.strerror})") from None
    for name, data in models:
        write_atomic(os.path.join(output, f"{name}.tflite"), data)
    click.echo(f"{output}: {len(models)} models")


@main.group()
def codebooks():
    """Learn and reuse shared codebooks."""


@codebooks.command("learn")
@models_arg
@output_file_opt("Codebook file to write (.npz, for build --codebooks).")
@codebook_opts
@click.option("--kernel-major", is_flag=True, help="Learn on spatially walked 3x3 kernels.")
@_guard
def codebooks_learn(models, output, codewords, subvector_lengths, seed, kernel_major):
    """Learn shared codebooks from MODELS and save them (.npz) for `build --codebooks`."""
    import io

    from .compiler import choose_layouts, learn_codebooks, load_models
    from .fileio import write_atomic

    ms = choose_layouts(load_models(list(models)), kernel_major)
    cbs = learn_codebooks(ms, codebook_options(codewords, subvector_lengths, seed))
    buf = io.BytesIO()
    cbs.to_npz(buf)
    write_atomic(output, buf.getvalue())
    subs = sum(len(b.subs) for b in cbs.books)
    click.echo(
        f"{output}: {subs} sub-codebooks ({len(cbs.books)} group/rate pairs) from {len(ms)} models"
    )


from . import cli_image  # noqa: E402, F401  (registers add and report)

if __name__ == "__main__":  # `python -m yonoc.cli`: run the real module (add/report live there)
    from yonoc.__main__ import entry

    entry()

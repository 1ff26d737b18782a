"""Build specs: a TOML file naming the models, their data, epsilon and build options.

    [build]
    mode = "yono"          # yono | pq-mopt | pq-m | pq-s | int8
    epsilon = 0.5          # allowed accuracy loss in percentage points (per-model default)
    finetune = "torch"     # finetune hook: torch | module:callable | entry point name
    codebooks = "cb.npz"   # frozen codebooks (optional)
    epochs = 16            # EM finetuning knobs: epochs, lr, batch_size, seed, init,
                           # train_biases, frozen_biases, reassign, loss, max_train,
                           # max_iterations, rate_search, patience, coded_tries,
                           # coded_loss, stall, device (see yonoc.passes.em.EMOptions)
    snr = 20.0             # data-free fidelity target (models without labels)
    min_agreement = 0.99
    execute = "auto"       # rebuild | flash | auto, as --execute (issue 14)
    encode = "output+bias" # nearest | output | output+bias, as --encode (issue 12)
    codewords = 256        # K, as --codewords
    subvector_lengths = { A = [8, 4, 2] }   # rates per group, as --subvector-lengths A=8,4,2

    [[model]]
    path = "models/kws.tflite"
    train = "models/kws.train.npz"   # x: float32 inputs, y: int64 labels
    val = "models/kws.val.npz"       # judges epsilon and every decision
    test = "models/kws.test.npz"     # reported only (no val: test is split, seeded)
    epsilon = 0.3                    # optional override

    [[model]]
    path = "models/ae.tflite"
    inputs = "ae_inputs.npy"         # unlabelled: distillation, judged on fidelity

    [[model]]
    path = "models/other.tflite"     # no data: data-free fidelity mode
    samples = "other.sample.npy"     # optional real samples for the fidelity check
    execute = "flash"                # per task, as --execute NAME=flash

Relative paths are relative to the spec file. Unknown keys are errors (typos would otherwise
silently change a build).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

import tomllib

from .errors import YonocError
from .options import MODES, BuildOptions
from .passes.em import DataSpec, EMOptions
from .passes.fidelity import FidelityTarget
from .passes.output_aware import ENCODINGS
from .pq.codebooks import CodebookOptions, group_rates

_MODEL_KEYS = {"path", "train", "val", "test", "inputs", "epsilon", "samples", "execute"}
_EM_KEYS = {
    "epsilon",
    "epochs",
    "lr",
    "batch_size",
    "seed",
    "init",
    "train_biases",
    "frozen_biases",
    "reassign",
    "loss",
    "max_train",
    "max_iterations",
    "rate_search",
    "patience",
    "coded_tries",
    "coded_loss",
    "stall",
    "restart",
    "coarsen",
    "finer_start",
    "min_start_gain",
    "device",
}
# the [build] table: every Algorithm 1 key plus how the image is built and judged data-free
_BUILD_KEYS = _EM_KEYS | {
    "mode",
    "finetune",
    "codebooks",
    "snr",
    "min_agreement",
    "fallback",
    "execute",  # rebuild | flash | auto, as --execute (issue 14); [[model]] execute per task
    "encode",  # nearest | output | output+bias, as --encode (issue 12)
    "codewords",  # as --codewords
    "subvector_lengths",  # {A = [8, 4, 2], B = [4, 2]}, as --subvector-lengths
}
_EXECUTE = ("rebuild", "flash", "auto")
_EM_CHOICES = {
    "init": ("original", "reconstructed"),
    "reassign": ("original", "finetuned"),
    "loss": ("auto", "ce", "bce", "kl", "mse", "ce+kl"),
    "coded_loss": ("auto", "ce", "bce", "kl", "mse", "ce+kl"),
}


@dataclass
class Spec:
    path: str
    models: list  # .tflite paths
    build: dict  # the [build] table, paths resolved
    data: tuple  # ((model name, DataSpec), ...)
    samples: tuple  # ((model name, .npy path), ...)
    execute: tuple = ()  # --execute values: "MODE" ([build]) and "NAME=MODE" ([[model]])


def load_spec(path: str) -> Spec:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise YonocError(f"{path}: no such build spec") from None
    except tomllib.TOMLDecodeError as e:
        raise YonocError(f"{path}: not valid TOML ({e})") from None
    except OSError as e:
        raise YonocError(f"{path}: cannot read ({e.strerror})") from None
    base = os.path.dirname(os.path.abspath(path))

    def resolve(p, where):
        if not isinstance(p, str) or not p:
            raise YonocError(f"{path}: {where} must be a non-empty path string")
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))

    unknown = set(doc) - {"build", "model"}
    if unknown:
        raise YonocError(
            f"{path}: unknown table(s) {', '.join(sorted(unknown))} "
            "(expected [build] and [[model]])"
        )
    build = dict(doc.get("build", {}))
    bad = set(build) - _BUILD_KEYS
    if bad:
        raise YonocError(f"{path}: unknown [build] key(s) {', '.join(sorted(bad))}")
    if "mode" in build and build["mode"] not in MODES:
        raise YonocError(f"{path}: mode {build['mode']!r} is not one of {', '.join(MODES)}")
    if "codebooks" in build:
        build["codebooks"] = resolve(build["codebooks"], "codebooks")
    for key in ("epsilon", "lr", "snr", "min_agreement", "min_start_gain"):
        if key in build and (not isinstance(build[key], (int, float)) or build[key] < 0):
            raise YonocError(f"{path}: [build] {key} must be a non-negative number")
    for key in ("epochs", "batch_size", "seed", "max_train", "patience", "coded_tries", "stall"):
        if key in build and (not isinstance(build[key], int) or build[key] < 0):
            raise YonocError(f"{path}: [build] {key} must be a non-negative integer")
    if "device" in build and not re.fullmatch(r"cpu|auto|cuda(:\d+)?", str(build["device"])):
        raise YonocError(f"{path}: [build] device must be cpu, cuda, cuda:N or auto")
    for key, allowed in _EM_CHOICES.items():
        if key in build and build[key] not in allowed:
            raise YonocError(f"{path}: [build] {key} must be one of {', '.join(allowed)}")
    for key in (
        "train_biases",
        "frozen_biases",
        "rate_search",
        "restart",
        "coarsen",
        "finer_start",
    ):
        if key in build and not isinstance(build[key], bool):
            raise YonocError(f"{path}: [build] {key} must be true or false")
    if "codewords" in build and (
        type(build["codewords"]) is not int or not 1 <= build["codewords"] <= 256
    ):
        raise YonocError(f"{path}: [build] codewords must be an integer 1..256")
    if "subvector_lengths" in build:
        lengths = build["subvector_lengths"]
        try:
            if not isinstance(lengths, dict):
                raise ValueError("expected a table such as { A = [8, 4, 2], B = [4, 2] }")
            group_rates(CodebookOptions().subvector_lengths, lengths)
        except ValueError as e:
            raise YonocError(f"{path}: [build] subvector_lengths: {e}") from None
    if "execute" in build and build["execute"] not in _EXECUTE:
        raise YonocError(f"{path}: [build] execute must be one of {', '.join(_EXECUTE)}")
    if "encode" in build and build["encode"] not in ENCODINGS:
        raise YonocError(f"{path}: [build] encode must be one of {', '.join(ENCODINGS)}")
    execute = [build.pop("execute")] if "execute" in build else []
    models = doc.get("model", [])
    if not isinstance(models, list) or not models:
        raise YonocError(f"{path}: no [[model]] entries")
    paths, data, samples = [], [], []
    for k, entry in enumerate(models):
        where = f"[[model]] #{k + 1}"
        if not isinstance(entry, dict) or "path" not in entry:
            raise YonocError(f'{path}: {where} needs path = "....tflite"')
        bad = set(entry) - _MODEL_KEYS
        if bad:
            raise YonocError(f"{path}: {where}: unknown key(s) {', '.join(sorted(bad))}")
        mpath = resolve(entry["path"], f"{where} path")
        name = os.path.splitext(os.path.basename(mpath))[0]
        paths.append(mpath)
        eps = entry.get("epsilon")
        if eps is not None and (not isinstance(eps, (int, float)) or eps < 0):
            raise YonocError(f"{path}: {where}: epsilon must be a non-negative number")
        files = {
            key: resolve(entry[key], f"{where} {key}")
            for key in ("train", "val", "test", "inputs")
            if key in entry
        }
        if files:
            if "train" in files and "inputs" in files:
                raise YonocError(
                    f"{path}: {where}: give train (labelled) or inputs (unlabelled), not both"
                )
            if "test" in files and not ({"train", "inputs"} & set(files)):
                raise YonocError(f"{path}: {where}: test data needs train = or inputs = too")
            if "val" in files and not ("train" in files and "test" in files):
                raise YonocError(
                    f"{path}: {where}: val data needs train = and test = too (labelled data)"
                )
            data.append(
                (
                    name,
                    DataSpec(
                        files.get("train"),
                        files.get("test"),
                        files.get("inputs"),
                        float(eps) if eps is not None else None,
                        files.get("val"),
                    ),
                )
            )
        if "samples" in entry:
            samples.append((name, resolve(entry["samples"], f"{where} samples")))
        if "execute" in entry:
            if entry["execute"] not in _EXECUTE:
                raise YonocError(f"{path}: {where}: execute must be one of {', '.join(_EXECUTE)}")
            execute.append(f"{name}={entry['execute']}")
    return Spec(path, paths, build, tuple(data), tuple(samples), tuple(execute))


def apply(spec: Spec, options: BuildOptions, overrides: dict | None = None) -> BuildOptions:
    """BuildOptions from a spec on top of `options`; `overrides` (explicit CLI flags) win."""
    b = dict(spec.build)
    b.update({k: v for k, v in (overrides or {}).items() if v is not None})
    em_kw = {k: b[k] for k in _EM_KEYS if k in b}
    if "epsilon" in em_kw:
        em_kw["epsilon"] = float(em_kw["epsilon"])
    em = replace(options.em, **em_kw)
    target = FidelityTarget(
        float(b.get("snr", options.target.snr_db)),
        float(b.get("min_agreement", options.target.min_agreement)),
    )
    codebook = replace(
        options.codebook,
        codewords=b.get("codewords", options.codebook.codewords),
        subvector_lengths=group_rates(
            options.codebook.subvector_lengths, b.get("subvector_lengths", {})
        ),
    )
    return replace(
        options,
        mode=b.get("mode", options.mode),
        codebook=codebook,
        em=em,
        target=target,
        finetune=b.get("finetune", options.finetune),
        frozen_codebooks=b.get("codebooks", options.frozen_codebooks),
        fallback=b.get("fallback", options.fallback),
        encode=b.get("encode", options.encode),
        data=tuple(options.data) + spec.data,
        samples=tuple(options.samples) + spec.samples,
    )


__all__ = ["Spec", "load_spec", "apply", "EMOptions"]

"""Build options: one frozen dataclass, filled by the CLI or a build spec."""

from __future__ import annotations

from dataclasses import dataclass, field

from .passes.em import EMOptions
from .passes.fidelity import FidelityTarget
from .pq.codebooks import CodebookOptions

MODES = ("yono", "pq-mopt", "pq-m", "pq-s", "int8")


@dataclass(frozen=True)
class BuildOptions:
    mode: str = "yono"
    codebook: CodebookOptions = field(default_factory=CodebookOptions)
    frozen_codebooks: str | None = None  # .npz from `yonoc codebooks learn`
    target: FidelityTarget = field(default_factory=FidelityTarget)
    check: bool = True  # run the fidelity check (yono mode) and measure arenas in TFLM
    fallback: str = "sensitivity"  # or "eq3"
    samples: tuple = ()  # ((model name, .npy path), ...)
    generated_samples: int = 32
    max_samples: int = 64
    erase_names: bool = True
    kernel_major: bool = False  # walk 3x3 kernels spatially (slower firmware decode)
    measure_arena: bool = True
    jobs: int = 0  # worker processes for the per-model passes; 0 = one per core
    notes: bool = True  # build notes in the image (per-model/per-tensor fidelity; --no-notes)
    # codeword choice (passes/output_aware.py): "nearest" in weight space, "output" (GPTQ-style
    # on calibration activations) or "output+bias" (plus bias correction); yono / pq-mopt
    encode: str = "output+bias"
    # --- EM finetuning (Algorithm 1, passes/em.py); models with data in yono / pq-mopt modes
    data: tuple = ()  # ((model name, passes.em.DataSpec), ...), from a build spec
    finetune: str | None = None  # hook: "torch" (default), module:callable, entry point name
    em: EMOptions = field(default_factory=EMOptions)

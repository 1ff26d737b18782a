"""Build options: one frozen dataclass, filled by the CLI or a build spec."""

from __future__ import annotations

from dataclasses import dataclass, field

from .passes.fidelity import FidelityTarget
from .pq.codebooks import CodebookOptions

MODES = ("yono", "pq-m", "pq-s", "int8")


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
    measure_arena: bool = True
    jobs: int = 0  # worker processes for the per-model passes; 0 = one per core

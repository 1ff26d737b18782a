"""The EM pass's options and outcome (passes/em.py): what a spec sets and what a build reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..finetune import Training
from .encode import TensorEncodings
from .fidelity import FidelityTarget


@dataclass(frozen=True)
class EMOptions(Training):
    """Knobs of the EM pass (build spec [build] table / CLI); training knobs and their
    defaults are `finetune.Training`'s, shared with every hook call."""

    epsilon: float = 1.0  # allowed accuracy loss, percentage points
    # the loss of training *through* the codebooks (the all-coded stage, reassign="finetuned"):
    # labels' cross-entropy plus distillation from the original; `loss` (default auto: labels
    # only) trains raw S. Measured on the examples (paper-tables.md): ce+kl in the stage met
    # audio_cnn1d (plain ce: never in 8 tries), kept the digits models' ratios at equal or
    # better val/test accuracy; in the loop's raw M-steps kws_dscnn met at the 4th M-step with
    # ce, the 7th with ce+kl (each a 16-epoch finetune)
    coded_loss: str = "ce+kl"
    heuristic: bool = True  # eq. 3 layer addition (mode yono); False: pq-mopt
    # E-step target: "original" weights (Algorithm 1's line 13 read literally: the codes never
    # move after the first assignment) or "finetuned" shadow weights, trained through their
    # codewords with S frozen (the paper's prose: indices re-assigned on the updated weights)
    # (measured on the examples: no gain over "original" at higher cost, so not the default)
    reassign: str = "original"
    init: str = "original"  # S layers start from the "original" or "reconstructed" weights
    max_train: int = 20000  # training examples used per finetune call (seeded subset)
    max_iterations: int | None = None  # cap on loop iterations (default L - 2, Algorithm 1)
    precheck: bool = True  # skip finetuning when the plain reconstruction already passes
    # rates inside the loop: eq. 3 steps a layer to its next finer rate before raw, and S is
    # coded again once the target is met; False: Algorithm 1 read literally (coarsest or raw)
    rate_search: bool = True
    fallback_raw: bool = True  # target missed at the end: keep the model as it was
    # before lines 1-8 (not in Algorithm 1): train *every* coded layer through its frozen
    # codebook (straight-through, biases too), S empty, and take its nearest codes; up to this
    # many tries, the eq. 3 worst layer one rate finer after each miss; 0 (or rate_search
    # false, Algorithm 1 read literally): off. 4: the examples met it at tries 1-3, audio_cnn1d
    # with codebooks learned without it at try 4 (3 tries: fallback, 2.65x); each try more
    # costs kws_dscnn (which misses it) ~30-90 s of the build's critical path (paper-tables.md)
    coded_tries: int = 4
    # Algorithm 1's loop (rate_search) stops after this many M-steps without a new best score
    # and goes to the fallback (not in Algorithm 1; 0: every iteration runs, as pq-mopt does)
    stall: int = 6
    # the all-coded stage missed: Algorithm 1's lines 1-8 start from the codes, rates and biases
    # as encoded (True) or from the stage's (False: its trained shadow weights' codes)
    restart: bool = True
    # target met (rate_search): every coded layer above its coarsest rate tries the coarser
    # ones, largest layer first, one evaluation each, no training; kept where the target holds
    coarsen: bool = True
    # target missed (rate_search): before the data-free fallback, Algorithm 1 runs again with
    # every coded layer's coarsest rate dropped (rates[1:]), and so on while a finer start is
    # left; False: straight to the fallback (and pq-mopt never retries). Examples spec with
    # 1 bpw rates: 3.66x -> 5.98x, audio_cnn1d and kws_dscnn met from 2 bpw instead of falling
    # back; the default rates never retry (paper-tables.md, "1 bpw with a finer start")
    finer_start: bool = True
    # a start whose coarsest rates could save less than this fraction of the weight bytes of
    # the next finer start is skipped (with `finer_start`): each start costs a whole EM run.
    # Examples spec with 1 bpw in group A only: kws_dscnn's 1 bpw start (six small 3x3
    # kernels, 3.4 %) ran 22 finetune calls (419 s of a 10-minute build) and missed
    min_start_gain: float = 0.1


@dataclass
class EMStep:
    trainable: list[int]  # layer indices in S
    score: float  # accuracy (%) or SNR (dB) after this step
    passed: bool


@dataclass
class EMOutcome:
    encodings: list[TensorEncodings]  # the input encodings with the E-step's updated codes
    choices: list[int]
    patches: dict[int, bytes]  # {file offset: bytes}
    metric: str  # "accuracy" or "fidelity"
    original: float | None  # original accuracy (%), accuracy mode
    final: float | None  # rebuilt accuracy (%) or SNR (dB)
    passed: bool
    trainable: list[int]  # final S
    steps: list[EMStep] = field(default_factory=list)
    fell_back: bool = False  # loop ended without meeting the target: model kept original
    test_original: float | None = None  # % on the held-out test data (reported only)
    test_final: float | None = None  # % of the rebuilt model on it
    recoded: list[int] = field(default_factory=list)  # finetuned layers coded again
    split: str = ""  # how the validation data was made, when the spec gave none
    coded_tries: int = 0  # tries of the all-coded stage it took (0: not met there)
    # where the time went: {"train_s", "train_calls", "eval_s", "evals", "fallback_s"}
    cost: dict = field(default_factory=dict)
    judged_by: FidelityTarget | None = None  # distillation: the target every step was judged by
    start_rate: int = 0  # coarsest rates dropped before the run that ended it (`finer_start`)

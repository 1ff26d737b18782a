"""Errors a user can act on. The CLI prints them as one line and exits with `exit_code`."""


class YonocError(Exception):
    """Base class: a problem with the user's input or options (exit code 2)."""

    exit_code = 2


class InputError(YonocError):
    """An input file (model, image) that is missing or cannot be read (exit code 3)."""

    exit_code = 3


class ModelError(YonocError):
    """A .tflite input that cannot be read or used (exit code 3)."""

    exit_code = 3


class LiftError(ModelError):
    """A model the finetuning lift cannot express (an operator or fused activation it lacks):
    a build codes it without finetuning instead of failing."""


class ImageError(YonocError):
    """A yonoc image that is corrupt, truncated or foreign (exit code 4)."""

    exit_code = 4


class FidelityError(YonocError):
    """A model that cannot meet its fidelity target even fully raw (exit code 5)."""

    exit_code = 5


class MissingDependencyError(YonocError):
    """An optional dependency (e.g. torch) is needed for the requested feature (exit code 6)."""

    exit_code = 6


class BudgetError(YonocError):
    """The image or a rebuilt model does not fit the target's flash or SRAM (exit code 7)."""

    exit_code = 7

"""Errors raised by the Lung-RADS evaluator.

    LungRadsError (ValueError)
    └── InvalidNoduleError   - the features contradict themselves or lack a size
"""


class LungRadsError(ValueError):
    """Base class for Lung-RADS errors."""


class InvalidNoduleError(LungRadsError):
    """The nodule features cannot be classified (missing size, solid part larger than nodule...)."""

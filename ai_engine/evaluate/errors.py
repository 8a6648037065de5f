"""Errors raised by the evaluation code.

    EvaluationError (ValueError)   - inputs that cannot be scored (shape mismatch, empty labels...)
"""


class EvaluationError(ValueError):
    """The inputs cannot be evaluated; the message says which input and why."""

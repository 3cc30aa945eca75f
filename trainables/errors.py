"""The trainables' way of saying "this input cannot work" (as opposed to a bug)."""


class TrainableInputError(ValueError):
    """Bad input found while preparing or building a trial: a backbone directory without
    weights, LoRA targets that match nothing, data that does not exist. The orchestrator
    reports it in one line (exit status 2) before any trial starts."""


class TrialDiverged(FloatingPointError):
    """A NaN or infinite loss: the trial cannot go on. The orchestrator records the trial as
    DIVERGED (not ERROR) with this message, and the report leaves it out of the statistics."""

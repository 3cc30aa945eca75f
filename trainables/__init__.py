"""Trainables: plain functions ``train_x(config)`` registered by name.

Every trainable package (a sub-package with a ``loop.py``: ``da_lora``, ``triplet``...) is
imported, and so registers itself, when ``trainables`` is imported, so the registry is
complete from then on; a new trainable needs no line here.
"""

from trainables._registry import (
    BEST_EPOCH_KEY,
    DATA_SNAPSHOT,
    DATA_SNAPSHOT_KEY,
    TrainableEntry,
    discover,
    get_trainable,
    list_trainables,
    register_trainable,
)

PACKAGES = discover(__name__, __path__)

__all__ = [
    "BEST_EPOCH_KEY",
    "DATA_SNAPSHOT",
    "DATA_SNAPSHOT_KEY",
    "PACKAGES",
    "TrainableEntry",
    "get_trainable",
    "list_trainables",
    "register_trainable",
]

"""Trainables: plain functions ``train_x(config)`` registered by name.

Each module below registers itself when imported here, explicitly, so the registry is
complete as soon as ``trainables`` is imported.
"""

from trainables import da_lora, infonce, pair_contrastive, probe, triplet  # noqa: F401  (each registers itself)
from trainables._registry import TrainableEntry, get_trainable, list_trainables, register_trainable

__all__ = ["TrainableEntry", "get_trainable", "list_trainables", "register_trainable"]

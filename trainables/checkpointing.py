"""Saving and restoring a trial's whole training state in a checkpoint directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.pt"


def save_state(directory: Path | str, state: dict[str, Any]) -> Path:
    path = Path(directory) / STATE_FILE
    torch.save(state, path)
    return path


def load_state(directory: Path | str) -> dict[str, Any]:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {directory} has no {STATE_FILE}")
    # weights_only: a checkpoint is data; loading one must not run code.
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"torch": torch.get_rng_state(), "data": generator.get_state()}


def restore_rng(state: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])

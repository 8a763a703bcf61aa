"""Checkpoints: state dicts and plain values only, written atomically, read with weights_only."""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bell_edge.errors import InputError
from bell_edge.files import staged_file


def save(obj: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file beside `path`, then rename: a kill never leaves half a file."""
    with staged_file(path) as tmp:
        torch.save(obj, tmp)


# What torch.load raises for a file that is not a torch checkpoint: UnpicklingError (weights_only
# refused a global; random bytes), RuntimeError and OSError (a torn zip archive), EOFError
# (empty), KeyError and UnicodeDecodeError (text), zipfile.BadZipFile, ValueError. Anything else
# is not about the file and propagates.
_NOT_A_CHECKPOINT = (
    pickle.UnpicklingError, RuntimeError, OSError, EOFError, KeyError, UnicodeDecodeError,
    zipfile.BadZipFile, ValueError,
)  # fmt: skip


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with `weights_only=True`: no code from the file ever runs."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except _NOT_A_CHECKPOINT as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise InputError(f"{path}: not a readable bell-edge checkpoint ({first[:120]})") from None


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> tuple:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return kind, keys.tolist(), int(pos), int(has_gauss), float(cached)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

"""Checkpoint files: state dicts and plain values only, written atomically, read with
weights_only."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from bell_edge.errors import InputError
from bell_edge.files import staged_file


def save(obj: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file beside `path`, then rename: a kill never leaves half a file."""
    with staged_file(path) as tmp:
        torch.save(obj, tmp)


# What torch.load raises for a file that is not a torch checkpoint: UnpicklingError (weights_only
# refused a global; random bytes), RuntimeError and OSError (a torn zip archive), EOFError
# (empty), KeyError, IndexError and UnicodeDecodeError (text), zipfile.BadZipFile, ValueError.
# Anything else is not about the file and propagates.
_NOT_A_CHECKPOINT = (
    pickle.UnpicklingError, RuntimeError, OSError, EOFError, KeyError, IndexError,
    UnicodeDecodeError, zipfile.BadZipFile, ValueError,
)  # fmt: skip


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with `weights_only=True`: no code from the file ever runs. Anything but a dict of
    tensors and plain values is refused with a one-line InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns of the pickle protocol before refusing
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except _NOT_A_CHECKPOINT as exc:
        why = (
            "it holds Python objects, which weights-only loading refuses unread"
            if "Weights only load failed" in str(exc)
            else f"{type(exc).__name__} while reading it"
        )
        raise InputError(f"{path}: not a readable bell-edge checkpoint ({why})") from None
    if not isinstance(state, dict):
        raise InputError(
            f"{path}: not a bell-edge checkpoint (a {type(state).__name__}, not a dict)"
        )
    return state

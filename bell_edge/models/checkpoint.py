"""Checkpoint files: state dicts and plain values only, written atomically, read with
weights_only."""

from __future__ import annotations

import pickle
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

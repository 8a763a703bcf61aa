"""Write a bundle (models, manifest with hashes, model card) atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bell_edge.errors import InputError
from bell_edge.files import ensure_writable, staged_dir
from bell_edge.runtime.bundle import (
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_SHA256,
    Bundle,
    file_hashes,
    manifest_sum,
    read_bundle,
)

CARD = "MODEL_CARD.md"


def check_target(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise InputError(f"{out}: exists (use --force to replace it)")
    ensure_writable(out.parent)  # before the export's work, not after it


def write_bundle(
    out: str | Path,
    files: dict[str, Path],
    manifest: dict[str, Any],
    model_card: str,
    force: bool = False,
) -> Bundle:
    """Copy `files` (bundle name -> source) and write the manifest and card into a temporary
    folder beside `out`, verify it, then rename it into place. A failed write leaves nothing."""
    out = Path(out)
    check_target(out, force)
    with staged_dir(out) as tmp:
        for name, source in files.items():
            shutil.copyfile(source, tmp / name)
        (tmp / CARD).write_text(model_card)
        names = [*files, CARD]
        full = {"format_version": FORMAT_VERSION, **manifest, "files": file_hashes(tmp, names)}
        raw = json.dumps(full, indent=1).encode()
        (tmp / MANIFEST).write_bytes(raw)
        (tmp / MANIFEST_SHA256).write_text(manifest_sum(raw))
        read_bundle(tmp)  # verify before it becomes visible
    return read_bundle(out)

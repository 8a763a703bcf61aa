"""Pretrained encoders shipped inside the package, as torchvision and timm ship weights, with no
download: `bell_edge/models/weights/<name>/` holds `encoder.pt` (a state-dict checkpoint),
`manifest.json` (recipe, data sources and their hashes, commit, steps, results, the sha256 and
size of `encoder.pt`) and `MODEL_CARD.md`. A file is verified against its manifest's sha256
before anything reads it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch

from bell_edge.config import tomllib
from bell_edge.data.cache import file_sha256
from bell_edge.errors import InputError
from bell_edge.files import staged_dir

WEIGHTS = Path(__file__).with_name("weights")
ENCODER_FILE, MANIFEST_FILE, CARD_FILE = "encoder.pt", "manifest.json", "MODEL_CARD.md"
MAX_BYTES = 5 * 1024 * 1024


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / MANIFEST_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{folder / MANIFEST_FILE}: unreadable manifest ({exc})") from None


def available(root: Path = WEIGHTS) -> list[dict[str, Any]]:
    """The shipped encoders' manifests, by name, numbers in a name in numeric order (v2 before
    v10), so the newest version is last."""
    if not root.is_dir():
        return []
    folders = sorted(root.iterdir(), key=_version_order)
    return [_manifest(d) for d in folders if (d / MANIFEST_FILE).is_file()]


def _version_order(folder: Path) -> list:
    return [
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", folder.name)
    ]


def verified_path(name: str, root: Path = WEIGHTS, *, flag: str = "--init") -> Path:
    """The `encoder.pt` of a shipped encoder, after checking it against its manifest; `flag`
    names the option that gave `name` in the error."""
    folder = root / name
    if not (folder / MANIFEST_FILE).is_file():
        known = ", ".join(m["name"] for m in available(root)) or "none"
        raise InputError(
            f"{flag} {name}: not a run, a checkpoint or a shipped encoder (shipped: {known})"
        )
    manifest = _manifest(folder)
    file = folder / ENCODER_FILE
    if not file.is_file():
        raise InputError(f"{file}: missing")
    if file_sha256(file) != manifest["sha256"]:
        raise InputError(
            f"{file}: sha256 does not match {folder / MANIFEST_FILE}; refusing to load"
        )
    return file


def resolve_init(init: str | Path, root: Path = WEIGHTS, *, flag: str = "--init") -> Path:
    """What `--init` names: a shipped encoder (by name, or any path inside `root`) is verified
    against its manifest first, so a local folder of the same name cannot stand in for it; any
    other existing path (a run, a checkpoint) is returned as it is."""
    shipped = (root / str(init) / MANIFEST_FILE).is_file()
    path, weights = Path(init).resolve(), root.resolve()
    if not shipped and Path(init).exists():
        if path == weights or not path.is_relative_to(weights):
            return Path(init)
        init = path.relative_to(weights).parts[0]
    return verified_path(str(init), root, flag=flag)


def pack(
    run: Path, name: str, results: dict[str, Any], card: str, root: Path = WEIGHTS,
    force: bool = False, commit: str | None = None,
) -> Path:  # fmt: skip
    """Ship a pretraining run's `encoder.pt` as `root/name/`, with its manifest and card.

    The manifest takes the run's own files (config.toml, corpus.json, summary.json), so it states
    what the run was; `results` are the evaluations made of it.
    """
    out = root / name
    if out.exists() and not force:
        raise InputError(f"{out}: exists (use --force to replace)")
    source = run / ENCODER_FILE
    summary = json.loads((run / "summary.json").read_text())
    if summary["steps"] != summary["total_steps"]:
        raise InputError(f"{run}: unfinished ({summary['steps']}/{summary['total_steps']} steps)")
    if source.stat().st_size > MAX_BYTES:
        raise InputError(f"{source}: {source.stat().st_size} bytes, over the {MAX_BYTES} limit")
    state = torch.load(source, map_location="cpu", weights_only=True)
    manifest = {
        "name": name,
        "method": state["method"],
        "params": sum(int(v.numel()) for k, v in state["encoder"].items()
                      if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))),
        "sha256": file_sha256(source),
        "bytes": source.stat().st_size,
        "labels_used": False,
        "steps": summary["steps"],
        "commit": commit or _commit(),
        "recipe": tomllib.loads((run / "config.toml").read_text()),
        "sources": json.loads((run / "corpus.json").read_text()),
        "pretrain_summary": summary,
        "results": results,
    }  # fmt: skip
    with staged_dir(out) as tmp:
        shutil.copyfile(source, tmp / ENCODER_FILE)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
        (tmp / CARD_FILE).write_text(card)
    return out


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).parent,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()

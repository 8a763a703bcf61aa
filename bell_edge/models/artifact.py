"""The trained artifact: a fine-tuned classifier as a run directory holds it, its loader, and
how it is scored (window probabilities, averaged per record)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bell_edge.config import ModelConfig, PreprocessConfig, from_dict
from bell_edge.errors import InputError
from bell_edge.files import holds_files
from bell_edge.models import checkpoint
from bell_edge.models.heads import ECGClassifier
from bell_edge.models.pretrained import ENCODER_FILE, MANIFEST_FILE

CLASSIFIER_FORMAT = "bell-edge-classifier"
MODEL, SUBSET, CONFIG = "model.pt", "subset.json", "config.toml"
CHECKPOINT = "checkpoint.pt"  # a run in progress, pretraining or fine-tuning (`--resume`)


def check_run_dir(out: Path, force: bool) -> None:
    """A run directory may be written: absent, empty, or `force`; else one-line InputError."""
    if holds_files(out) and not force:
        if (out / CHECKPOINT).is_file() and (out / SUBSET).is_file():
            raise InputError(f"{out}: a run that stopped before its end (use --resume to go on "
                             "from its checkpoint, --force to start it again)")  # fmt: skip
        if (out / CONFIG).is_file() and not (out / MODEL).is_file():
            raise InputError(f"{out}: a run that stopped before its end, without {MODEL} "
                             "(use --force to start it again)")  # fmt: skip
        raise InputError(f"{out}: exists and is not empty (use --force to replace)")


@dataclasses.dataclass
class Classifier:
    """A fine-tuned model with everything needed to use it."""

    model: ECGClassifier
    model_config: ModelConfig
    preprocess: PreprocessConfig
    classes: tuple[str, ...]
    thresholds: np.ndarray
    meta: dict[str, Any]


def classifier_file(path: Path) -> Path:
    """The `model.pt` of a fine-tuned run directory, or the file itself. A folder without one
    is refused in one line that says what it looks like instead."""
    if not path.is_dir() or (path / MODEL).is_file():
        return path / MODEL if path.is_dir() else path
    if (path / SUBSET).is_file():
        hint = "a fine-tuning run that stopped before its end"
        if (path / CHECKPOINT).is_file():
            hint += f" (bell-edge finetune ... --out {path} --resume continues it)"
    elif (path / ENCODER_FILE).is_file() or (path / CHECKPOINT).is_file():
        hint = f"a pretraining run; fine-tune it first (bell-edge finetune --init {path} ...)"
    elif (path / MANIFEST_FILE).is_file():
        hint = (
            "a bundle; this takes the fine-tuned run it came from (its manifest's "
            "source_checkpoint)"
        )
    elif (path / "model.onnx").is_file():
        hint = f"a bundle without its {MANIFEST_FILE}; export it again"
    elif (path / CONFIG).is_file():
        hint = "a fine-tuning run that stopped before its end"
    else:
        hint = "not a fine-tuned run, a checkpoint or a bundle"
    raise InputError(f"{path}: no {MODEL}: {hint}")


def load_classifier(path: str | Path) -> Classifier:
    """A fine-tuned run directory or its `model.pt` (read with weights_only)."""
    file = classifier_file(Path(path))
    state = checkpoint.load(file)
    if not isinstance(state, dict) or state.get("format") != CLASSIFIER_FORMAT:
        raise InputError(f"{file}: not a fine-tuned bell-edge model")
    model_cfg = from_dict(ModelConfig, state["model_config"])
    model = ECGClassifier(model_cfg)
    model.load_state_dict(state["model"])
    model.eval()
    return Classifier(
        model=model,
        model_config=model_cfg,
        preprocess=from_dict(PreprocessConfig, state["preprocess"]),
        classes=tuple(state["classes"]),
        thresholds=np.asarray(state["thresholds"], dtype=np.float32),
        meta={
            **{k: state[k] for k in ("init", "label_fraction", "mode", "val_macro_auroc")},
            "tasks": state.get("tasks", []),
            "lead_set_thresholds": state.get("lead_set_thresholds", {}),
            "fitted_classes": state.get("fitted_classes"),  # None: saved before the field
            "exclusive_pairs": state.get("exclusive_pairs", []),
        },
    )


@torch.no_grad()
def predict(
    model: nn.Module, windows: np.ndarray, masks: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """Sigmoid probabilities `(N, C)` of a classifier on windows, in eval mode on the CPU."""
    model.eval()
    out = []
    for i in range(0, len(windows), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(windows[i : i + batch_size]))
        m = torch.from_numpy(np.ascontiguousarray(masks[i : i + batch_size]))
        out.append(torch.sigmoid(model(x, m)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

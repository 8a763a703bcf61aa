"""The bundle's model card, filled from the run's own manifests, never from fixed text.

Its headings follow the labeling elements and the example model card of the FDA's draft
guidance "Artificial Intelligence-Enabled Device Software Functions: Lifecycle Management and
Marketing Submission Recommendations" (January 2025): device information, intended use, model
inputs and outputs, architecture, development data, performance, limitations, monitoring, and
installation and use. Every figure comes from a file of the run: the label subset
(`subset.json`), the pretraining corpus (`corpus.json`, or a shipped encoder's manifest), the
evaluation cache, the calibration manifest and the accuracy gate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bell_edge.data import cache as data_cache
from bell_edge.data.cache import file_sha256
from bell_edge.metrics import MAX_SEPARATION_P, MIN_THRESHOLD_POSITIVES
from bell_edge.models import pretrained
from bell_edge.models.artifact import MODEL, SUBSET

NOT_RECORDED = "not recorded"
GUIDANCE = (
    "FDA draft guidance, Artificial Intelligence-Enabled Device Software Functions: "
    "Lifecycle Management and Marketing Submission Recommendations (January 2025)"
)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def fine_tuning_data(ckpt: Path) -> dict | None:
    """The labeled subset the model was fine-tuned on, from the run's subset.json."""
    run = ckpt if ckpt.is_dir() else ckpt.parent
    subset = _read(run / SUBSET)
    if not isinstance(subset, dict):
        return None
    return {
        "source": subset.get("source"),
        "records": subset.get("n"),
        "label_fraction": subset.get("fraction"),
        "seed": subset.get("seed"),
        "positives": subset.get("positives"),
        "subset_sha256": file_sha256(run / SUBSET),
    }


def pretraining_data(init: str | None) -> list[dict] | None:
    """The unlabeled corpus of the encoder the model started from (None: random init)."""
    if not init or init == "scratch":
        return None
    if any(m["name"] == init for m in pretrained.available()):
        sources = next(m for m in pretrained.available() if m["name"] == init).get("sources")
    else:
        path = Path(init)
        sources = _read((path if path.is_dir() else path.parent) / "corpus.json")
    if not isinstance(sources, list):
        return [{"path": NOT_RECORDED}]
    keep = ("path", "layout", "records", "windows", "index_sha256")
    return [{k: s.get(k) for k in keep} for s in sources]


def evaluation_data(path: Path, preprocess) -> dict:
    cache = data_cache.load(path, preprocess, progress=False)
    split = "val" if len(cache.rows("val")) else "test"
    return {
        "source": str(cache.meta["source"]),
        "split": split,
        "records": int(len(set(cache.record_ids[cache.rows(split)].tolist()))),
        "cache_key": cache.meta["key"],
    }


def model_card(ckpt: Path, clf, manifest: dict, report: dict) -> str:
    meta, data = clf.meta, manifest["data"]
    ft, pre, ev = data["fine_tuning"], data["pretraining"], data["evaluation"]
    classes = ", ".join(clf.classes)
    lines = [
        "# Model card",
        "",
        f"Headings after the {GUIDANCE}.",
        "",
        "## Device information",
        "- This monitor function uses AI: a convolutional network classifies ECG windows.",
        f"- Model: `{MODEL}` of `{manifest['source_checkpoint']}`, sha256 "
        f"{file_sha256(ckpt / MODEL if ckpt.is_dir() else ckpt)[:16]}...",
        f"- Software: {', '.join(f'{k} {v}' for k, v in manifest['versions'].items())}",
        "",
        "## Intended use",
        f"Screening aid that flags the classes {_flagged(clf)} on 10-s 12-lead ECG windows "
        "in a bedside monitor, for clinicians. Not a diagnosis: a clinician reads every flagged "
        f"ECG. {_rhythm_use(clf.classes)}{_exclusive(clf)} Not for children or ECGs unlike the "
        "development data below.",
        "",
        "## Model inputs",
        f"- {manifest['input_shape'][0]} leads in the order {' '.join(manifest['lead_order'])} "
        f"(a missing lead is masked), {manifest['input_shape'][1]} samples at "
        f"{manifest['preprocess']['fs']} Hz; preprocessing {manifest['preprocess']} "
        f"(hash {manifest['preprocess_hash'][:12]})",
        "",
        "## Model outputs",
        f"- one probability per class ({classes}); a class is flagged above its threshold "
        f"({', '.join(f'{c} {t:.3f}' for c, t in zip(clf.classes, clf.thresholds, strict=True))}"
        ", chosen for the best F1 on the validation split; a fixed 0.5 for a class with fewer "
        f"than {MIN_THRESHOLD_POSITIVES} validation positives or whose scores do not separate "
        f"it from the others there (one-sided Mann-Whitney p >= {MAX_SEPARATION_P:g}))",
        "",
        "## Model architecture",
        f"- {manifest['model_config']}",
        f"- fine-tuning: mode {meta.get('mode')}, initialization {meta.get('init')}",
        "",
        "## Development data",
    ]
    if ft:
        positives = ", ".join(f"{c} {n}" for c, n in (ft["positives"] or {}).items())
        lines.append(
            f"- fine-tuning (labeled): {ft['records']} records of `{ft['source']}` "
            f"(label fraction {ft['label_fraction']}, seed {ft['seed']}; positives {positives}); "
            f"subset.json sha256 {ft['subset_sha256'][:16]}..."
        )
    else:
        lines.append(f"- fine-tuning (labeled): {NOT_RECORDED} (no subset.json beside the model)")
    if pre is None:
        lines.append("- pretraining: none (random initialization)")
    for s in pre or []:
        lines.append(
            f"- pretraining (labels unused): `{s['path']}`, {s.get('records')} records, "
            f"{s.get('windows')} windows, index sha256 {str(s.get('index_sha256'))[:16]}..."
        )
    lines += [
        f"- validation macro AUROC at training time: {_number(meta.get('val_macro_auroc'))}",
        "",
        "## Performance",
        f"- evaluation data: the {ev['split']} split of `{ev['source']}`, {ev['records']} "
        f"records (cache key {ev['cache_key'][:12]})",
    ]
    gate = report.get("gate")
    if gate:
        f32, i8 = gate["fp32"], gate["int8"]
        lines += [
            f"- macro AUROC FP32 {f32['macro_auroc']:.4f} {_ci(f32)}, INT8 {i8['macro_auroc']:.4f} "
            f"{_ci(i8)}; INT8 drop {100 * gate['macro_drop']:.2f} points (gate "
            f"{100 * gate['max_drop']:.2f}) on {gate['n_records']} records",
            f"- thresholded decisions changed by INT8: {100 * gate['changed_decisions']:.2f}%",
            "",
            "| class | AUROC FP32 | AUROC INT8 | drop (points) |",
            "|---|---|---|---|",
        ]
        for c, d in gate["per_class_drop"].items():
            if d["fp32"] is None:
                lines.append(f"| {c} | - | - | - |")
                continue
            lines.append(f"| {c} | {d['fp32']:.4f} | {d['int8']:.4f} | {100 * d['drop']:+.2f} |")
    else:
        lines.append("- FP32 only: parity with torch checked; no INT8 model, no gate")
    lite = report.get("litert")
    if lite:
        facts = lite["facts"]
        lines += [
            "",
            f"- LiteRT full-integer INT8 (`model.int8.tflite`, {facts['bytes']:,} bytes, "
            f"{facts['converter']}): macro AUROC {lite['int8']['macro_auroc']:.4f}, drop "
            f"{100 * lite['macro_drop']:.2f} points (gate "
            f"{'passed' if lite['passed'] else 'FAILED'}); TFLite Micro arena about "
            f"{facts['arena']['activations']:,} bytes of activations",
        ]
    calib = manifest.get("calibration")
    sources = ", ".join(f"`{s.get('root')}`" for s in (calib or {}).get("sources") or [])
    lines += [
        "",
        "## Known limitations",
        f"- Developed on the data above only ({_sources(ft, pre)}); other devices, sampling "
        "rates, hospitals and populations may differ. Calibrate and gate on your own data "
        "before use.",
        "- Classes are statements about resting 10-s ECGs; alone they are not rhythm alarms.",
        "",
        "## Performance monitoring",
        "- Re-run `bell-edge evaluate BUNDLE --data ...` on local labeled ECGs; the monitor flags "
        "flat, noisy and missing leads per hop.",
        "",
        "## Installation and use",
        (f"- INT8 calibration set: `{calib['name']}` ({calib['windows']} unlabeled windows, "
         f"{calib['method']}, sha256 {calib['sha256'][:16]}...) from {sources}")
        if calib else "- no INT8 calibration (FP32 bundle)",
        f"- reproduce: `{_export_command(manifest)}`",
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _export_command(manifest: dict) -> str:
    """The export command that makes this bundle again (with the calibration manifest's name
    where several folders were calibrated on)."""
    command = f"bell-edge export {manifest['source_checkpoint']} --out BUNDLE"
    calib = manifest.get("calibration")
    if calib:
        roots = [s.get("root") for s in calib.get("sources") or []]
        source = roots[0] if len(roots) == 1 else f"{calib['name']}.json"
        evaluation = manifest["data"]["evaluation"]["source"]
        command += f" --int8 --calib {source} --eval {evaluation} --method {calib['method']}"
    if "tensorrt-plan" in manifest.get("models", {}):
        command += " --engine tensorrt"
    if manifest.get("litert"):
        command += " --litert"
    return command


def _flagged(clf) -> str:
    """The classes with a threshold fitted on validation data, and those without, named as
    not validated (checkpoints from before the field say nothing of it)."""
    fitted = clf.meta.get("fitted_classes")
    if fitted is None:
        return ", ".join(clf.classes)
    others = [c for c in clf.classes if c not in fitted]
    text = ", ".join(fitted) or "(none)"
    if others:
        text += (f" (validated: a threshold fitted on the validation split); {', '.join(others)} "
                 "are not validated there and are reported as probabilities for research use "
                 "only")  # fmt: skip
    return text


def _exclusive(clf) -> str:
    pairs = clf.meta.get("exclusive_pairs") or []
    if not pairs:
        return ""
    named = ", ".join(f"{a}/{b}" for a, b in pairs)
    return (" The monitor flags at most one class of each pair the training labels never had "
            f"together ({named}): the more probable. Its AF alarm reads the AFIB probability, so "
            "it can sound while an AFIB flag is overruled.")  # fmt: skip


def _rhythm_use(classes) -> str:
    if "AFIB" in classes:
        return ("Its AFIB probability is one of the two conditions of the monitor's AF alarm; "
                "the other is RR irregularity from the beat detector.")  # fmt: skip
    return "Not for rhythm alarms."


def _ci(metrics: dict) -> str:
    ci = metrics.get("macro_auroc_ci")
    return f"(95% CI {ci[0]:.4f}-{ci[1]:.4f})" if ci else "(no CI)"


def _sources(ft: dict | None, pre: list[dict] | None) -> str:
    names = [Path(str(ft["source"])).name] if ft else []
    names += [Path(str(s["path"])).name for s in pre or []]
    return ", ".join(dict.fromkeys(names)) or NOT_RECORDED

"""The bundle reader refuses anything but a complete, untampered bundle of a known version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bell_edge.config import CANONICAL_LEADS, SUPERCLASSES, PreprocessConfig, to_dict
from bell_edge.errors import InputError
from bell_edge.runtime.bundle import (
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_SHA256,
    BundleError,
    file_hashes,
    manifest_sum,
    read_bundle,
    sha256_file,
)


def _write_manifest(root: Path, **overrides) -> None:
    manifest = {
        "format_version": FORMAT_VERSION,
        "classes": list(SUPERCLASSES),
        "thresholds": [0.5, 0.4, 0.3, 0.2, 0.1],
        "input_shape": [12, 1000],
        "lead_order": list(CANONICAL_LEADS),
        "preprocess": to_dict(PreprocessConfig()),
        "files": file_hashes(root, ["model.onnx", "MODEL_CARD.md"]),
        "models": {
            "fp32": {
                "file": "model.onnx",
                "format": "onnx",
                "precision": "fp32",
                "backend": "ort-cpu",
            }
        },  # fmt: skip
        "metrics": {"macro_auc": 0.9},
        **overrides,
    }
    raw = json.dumps(manifest).encode()
    (root / MANIFEST).write_bytes(raw)
    (root / MANIFEST_SHA256).write_text(manifest_sum(raw))


@pytest.fixture()
def bundle(tmp_path) -> Path:
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "model.onnx").write_bytes(bytes(range(256)) * 4)
    (root / "MODEL_CARD.md").write_text("# card\n")
    _write_manifest(root)
    return root


def test_reads_a_valid_bundle(bundle) -> None:
    b = read_bundle(bundle)
    assert b.classes == SUPERCLASSES and b.lead_order == CANONICAL_LEADS
    np.testing.assert_allclose(b.thresholds, [0.5, 0.4, 0.3, 0.2, 0.1])
    assert b.thresholds.dtype == np.float32
    assert b.input_shape == (12, 1000) and b.preprocess == PreprocessConfig()
    assert b.path("model.onnx") == bundle / "model.onnx"
    assert b.models["fp32"].path == bundle / "model.onnx" and b.models["fp32"].format == "onnx"
    assert b.manifest["metrics"] == {"macro_auc": 0.9}
    assert sha256_file(bundle / "MODEL_CARD.md") == b.manifest["files"]["MODEL_CARD.md"]
    with pytest.raises(BundleError, match=r"model\.plan: not in this bundle"):
        b.path("model.plan")


def _refused(root: Path, pattern: str) -> None:
    with pytest.raises(BundleError, match=pattern) as exc:
        read_bundle(root)
    assert isinstance(exc.value, InputError) and "\n" not in str(exc.value)


def test_refuses_a_tampered_file(bundle) -> None:
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[17] ^= 0xFF
    (bundle / "model.onnx").write_bytes(bytes(data))
    _refused(bundle, r"model\.onnx: sha256 does not match manifest\.json")


def test_refuses_a_manifest_edited_by_hand(bundle) -> None:
    text = (bundle / MANIFEST).read_text()
    (bundle / MANIFEST).write_text(text.replace('"NORM"', '"NORMX"'))  # a class renamed
    _refused(bundle, r"manifest\.json: sha256 does not match manifest\.sha256 \(edited")
    (bundle / MANIFEST).write_text(text)
    read_bundle(bundle)
    (bundle / MANIFEST_SHA256).unlink()
    _refused(bundle, r"manifest\.sha256: missing or unreadable \(re-export")


def test_refuses_a_missing_file(bundle) -> None:
    (bundle / "MODEL_CARD.md").unlink()
    _refused(bundle, r"MODEL_CARD\.md: missing")


def test_refuses_an_unknown_version(bundle) -> None:
    _write_manifest(bundle, format_version=FORMAT_VERSION + 1)
    _refused(bundle, rf"manifest\.json: format version {FORMAT_VERSION + 1} is not")


def test_refuses_a_version_1_bundle(bundle) -> None:
    """Version 1 had fixed model file names and no models table: refused in one line."""
    _write_manifest(bundle, format_version=1)
    _refused(bundle, r"manifest\.json: format version 1 is not 2, .*re-export it")


def test_refuses_a_missing_manifest(bundle) -> None:
    (bundle / MANIFEST).unlink()
    _refused(bundle, r"manifest\.json: missing")


def test_refuses_an_unlisted_model(bundle) -> None:
    (bundle / "model.plan").write_bytes(b"engine")
    _refused(bundle, r"model\.plan: model file not listed")


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"files": {"../model.onnx": "0" * 64}}, "is not inside the bundle"),
        ({"thresholds": [0.5]}, "1 thresholds for 5 classes"),
        ({"preprocess": {"fs": 100, "bogus": 1}}, "unknown setting bogus in PreprocessConfig"),
        ({"models": {}}, "`models` is not a"),
        ({"models": {"fp32": {"file": "model.onnx"}}}, "model 'fp32' needs file, format"),
        (
            {
                "models": {
                    "fp32": {
                        "file": "other.onnx",
                        "format": "onnx",
                        "precision": "fp32",
                        "backend": "ort-cpu",
                    }
                }
            },
            "file 'other.onnx' is not listed",
        ),
    ],
)
def test_refuses_bad_fields(bundle, overrides, pattern) -> None:
    _write_manifest(bundle, **overrides)
    _refused(bundle, pattern)


def test_imports_without_torch() -> None:
    code = "import sys, bell_edge.runtime.bundle; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

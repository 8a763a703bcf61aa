"""The bundle format: read a bundle folder and verify it before anything runs it (torch-free).

`manifest.json` holds at least:
- `format_version`: FORMAT_VERSION;
- `classes`: class names; `thresholds`: one decision threshold per class;
- `input_shape`: `[leads, samples]` of one window; `lead_order`: the lead names, in input order;
- `preprocess`: the `PreprocessConfig` as a dict;
- `files`: `{name: sha256}` of every other file of the bundle (names relative to the folder);
- `models`: `{name: {file, format, precision, backend}}`: each model, the listed file it is,
  its format (`onnx`, `tensorrt-plan`, `tflite`), `fp32` or `int8`, and the backend it was
  made and gated for (a `bell_edge.runtime.backends` registry name).
Other keys (metrics, versions, calibration hash, ...) pass through in `Bundle.manifest`.
`manifest.sha256` holds the manifest's own sha256: a manifest edited by hand (a class renamed, a
threshold moved) no longer describes what the export verified and gated, and is refused.
A bundle is refused unless every listed file exists with its hash and every model file
(`*.onnx`, `*.plan`, `*.tflite`) in the folder is listed, and every model names a listed file.
Version 1 bundles (fixed model file names, no `models` table) are refused: re-export them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np

from bell_edge.config import PreprocessConfig, from_dict
from bell_edge.errors import InputError

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
MANIFEST_SHA256 = "manifest.sha256"
MODEL_SUFFIXES = (".onnx", ".plan", ".tflite")
MODEL_KEYS = ("file", "format", "precision", "backend")
REQUIRED = ("format_version", "classes", "thresholds", "input_shape", "lead_order", "preprocess",
            "files", "models")  # fmt: skip


class BundleError(InputError):
    """A bundle that must not be loaded; one line naming the file and the fault."""


@dataclasses.dataclass(frozen=True)
class Model:
    """One entry of the manifest's `models` table, its file verified."""

    name: str
    path: Path
    format: str
    precision: str
    backend: str


@dataclasses.dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: dict
    classes: tuple[str, ...]
    thresholds: np.ndarray  # (n_classes,) float32
    input_shape: tuple[int, int]  # (leads, samples)
    preprocess: PreprocessConfig
    lead_order: tuple[str, ...]
    files: dict[str, Path]  # listed name -> verified path
    models: dict[str, Model]  # the `models` table

    def path(self, name: str) -> Path:
        """The verified path of a listed file; BundleError when the bundle lacks it."""
        if name not in self.files:
            raise BundleError(f"{self.root / name}: not in this bundle")
        return self.files[name]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_hashes(root: str | Path, names: Iterable[str]) -> dict[str, str]:
    """`{name: sha256}` of files in `root`, the `files` entry of a manifest."""
    return {name: sha256_file(Path(root) / name) for name in names}


def read_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle folder; any fault is a BundleError."""
    root = Path(path)
    manifest_path = root / MANIFEST
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle folder")
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: missing, {root} is not a bundle")
    try:
        raw = manifest_path.read_bytes()
        manifest = json.loads(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: unreadable ({exc})") from None
    _check_manifest_sum(root, raw)
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path}: not a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        hint = " (re-export it with this bell-edge)" if version == 1 else ""
        raise BundleError(
            f"{manifest_path}: format version {version!r} is not {FORMAT_VERSION}, the one "
            f"this reader knows{hint}"
        )
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise BundleError(f"{manifest_path}: missing keys {', '.join(missing)}")
    files = _verified_files(root, manifest["files"])
    try:
        classes = tuple(str(c) for c in manifest["classes"])
        thresholds = np.asarray(manifest["thresholds"], dtype=np.float32)
        leads, samples = (int(n) for n in manifest["input_shape"])
        lead_order = tuple(str(lead) for lead in manifest["lead_order"])
        preprocess = from_dict(PreprocessConfig, manifest["preprocess"])
    except (TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise BundleError(f"{manifest_path}: bad field ({exc})") from None
    if thresholds.shape != (len(classes),):
        raise BundleError(
            f"{manifest_path}: {thresholds.size} thresholds for {len(classes)} classes"
        )
    if len(lead_order) != leads:
        raise BundleError(f"{manifest_path}: {len(lead_order)} lead names for {leads} input leads")
    models = _models(manifest_path, manifest["models"], files)
    return Bundle(
        root, manifest, classes, thresholds, (leads, samples), preprocess, lead_order, files,
        models,
    )  # fmt: skip


def manifest_sum(raw: bytes) -> str:
    """The content of `manifest.sha256` for a manifest's bytes."""
    return f"{hashlib.sha256(raw).hexdigest()}  {MANIFEST}\n"


def _check_manifest_sum(root: Path, raw: bytes) -> None:
    path = root / MANIFEST_SHA256
    try:
        recorded = path.read_text()
    except (OSError, UnicodeDecodeError):
        raise BundleError(f"{path}: missing or unreadable (re-export the bundle)") from None
    if recorded != manifest_sum(raw):
        raise BundleError(
            f"{root / MANIFEST}: sha256 does not match {MANIFEST_SHA256} (edited or corrupted; "
            "re-export the bundle)"
        )


def _models(manifest_path: Path, table: object, files: dict[str, Path]) -> dict[str, Model]:
    """The `models` table, every entry complete and naming a listed file."""
    if not isinstance(table, dict) or not table:
        raise BundleError(
            f"{manifest_path}: `models` is not a {{name: {{{', '.join(MODEL_KEYS)}}}}} table"
        )
    models = {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or any(
            not isinstance(entry.get(k), str) for k in MODEL_KEYS
        ):
            raise BundleError(f"{manifest_path}: model {name!r} needs {', '.join(MODEL_KEYS)}")
        if entry["file"] not in files:
            raise BundleError(
                f"{manifest_path}: model {name!r} file {entry['file']!r} is not listed in `files`"
            )
        models[name] = Model(name, files[entry["file"]], entry["format"], entry["precision"],
                             entry["backend"])  # fmt: skip
    return models


def _verified_files(root: Path, listed: object) -> dict[str, Path]:
    """Listed name -> path, after checking names, existence, hashes and unlisted models."""
    manifest_path = root / MANIFEST
    if not isinstance(listed, dict):
        raise BundleError(f"{manifest_path}: `files` is not a {{name: sha256}} table")
    files = {}
    for name, digest in listed.items():
        parts = PurePosixPath(name).parts
        if (not parts or PurePosixPath(name).is_absolute() or ".." in parts
                or name in (MANIFEST, MANIFEST_SHA256)):  # fmt: skip
            raise BundleError(f"{manifest_path}: file name {name!r} is not inside the bundle")
        file = root / name
        if not file.is_file():
            raise BundleError(f"{file}: missing (listed in {MANIFEST})")
        if sha256_file(file) != digest:
            raise BundleError(f"{file}: sha256 does not match {MANIFEST} (tampered or corrupted)")
        files[name] = file
    for file in sorted(root.rglob("*")):
        rel = file.relative_to(root).as_posix()
        if file.suffix in MODEL_SUFFIXES and file.is_file() and rel not in files:
            raise BundleError(f"{file}: model file not listed in {MANIFEST}")
    return files

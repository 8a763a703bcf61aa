"""Shared fixtures: the real ECG folders beside the checkout, read in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# `make test` runs one pytest-xdist worker per core. Each worker, and the commands it starts,
# keeps to one thread: two torch processes at two threads each on two cores ran many times slower.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not beside the checkout")
    return path


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """Caches that commands prepare for raw folders go to a temporary folder, not ~/.cache."""
    path = tmp_path_factory.mktemp("user-cache")
    old = os.environ.get("BELL_EDGE_CACHE")
    os.environ["BELL_EDGE_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("BELL_EDGE_CACHE")
    else:
        os.environ["BELL_EDGE_CACHE"] = old


@pytest.fixture(scope="session")
def ptbxl100() -> Path:
    return _need(DATA / "ptbxl100")


@pytest.fixture(scope="session")
def cpsc2018() -> Path:
    return _need(DATA / "cpsc2018")


@pytest.fixture(scope="session")
def cpsc2021() -> Path:
    return _need(DATA / "cpsc2021")


@pytest.fixture(scope="session")
def cinc2021() -> Path:
    return _need(DATA / "cinc2021")


@pytest.fixture(scope="session")
def ptbdb() -> Path:
    return _need(DATA / "ptbdb")


@pytest.fixture(scope="session")
def ptbxl_cache(ptbxl100, tmp_path_factory):
    """The ptbxl100 cache, prepared once per test session."""
    from bell_edge.data.cache import prepare

    return prepare(ptbxl100, tmp_path_factory.mktemp("cache") / "ptbxl100", progress=False).cache


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` skip, with the reason, where no CUDA device is present."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    try:
        import torch

        available = torch.cuda.is_available()
    except ImportError:
        available = False
    if not available:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU; none here"))


TINY_MODEL = {
    "stem_width": 8,
    "stage_widths": (8, 16),
    "blocks_per_stage": (1, 1),
    "proj_hidden": 32,
    "proj_dim": 16,
}


@pytest.fixture(scope="session")
def tiny_classifier(ptbxl_cache, tmp_path_factory):
    """A small model fine-tuned for 2 epochs on 10% of ptbxl100 train: a real, weak classifier."""
    from bell_edge.config import FinetuneConfig, ModelConfig
    from bell_edge.train.finetune import finetune

    run = tmp_path_factory.mktemp("tiny") / "finetune"
    cfg = FinetuneConfig(model=ModelConfig(**TINY_MODEL), epochs=2, label_fraction=0.1)
    finetune(ptbxl_cache.root, run, cfg, progress=False)
    return run


@pytest.fixture(scope="session")
def tiny_bundle(tiny_classifier, ptbxl100, tmp_path_factory):
    """An INT8 bundle of the tiny classifier, calibrated on ptbxl100 train, gated on val."""
    from bell_edge.compress.pipeline import export_bundle

    out = tmp_path_factory.mktemp("bundle") / "bundle"
    export_bundle(tiny_classifier, out, int8=True, calib=ptbxl100, max_drop=0.05)
    return out


# A tiny pretraining config, so CPU tests run in seconds.
TINY_TOML = """
batch_size = 32
epochs = 1
checkpoint_every = 4
warmup_epochs = 0.2
[model]
stem_width = 8
stage_widths = [8, 16]
blocks_per_stage = [1, 1]
proj_hidden = 32
proj_dim = 16
"""


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


@pytest.fixture(scope="session")
def ptbxl_release() -> Path:
    return _need(DATA / "ptbxl100-release")


@pytest.fixture(scope="session")
def mitdb100() -> Path:
    return _need(DATA / "mitdb" / "100.hea").with_suffix("")

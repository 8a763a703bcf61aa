"""Shared fixtures: the real ECG folders beside the checkout, read in place."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not beside the checkout")
    return path


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

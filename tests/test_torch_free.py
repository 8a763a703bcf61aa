"""The data layer and the runtime import without torch: proved in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

TORCH_FREE = [
    "bell_edge.data",
    "bell_edge.data.preprocess",
    "bell_edge.data.cache",
    "bell_edge.data.inspect",
    "bell_edge.config",
    "bell_edge.runtime.bundle",
    "bell_edge.runtime.engine",
]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_imports_without_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)

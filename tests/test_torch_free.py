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
    "bell_edge.data.leads",
    "bell_edge.config",
    "bell_edge.runtime",
    "bell_edge.runtime.bundle",
    "bell_edge.runtime.backends",
    "bell_edge.runtime.backends.ort_cpu",
    "bell_edge.runtime.backends.ort_cuda",
    "bell_edge.runtime.backends.tensorrt",
    "bell_edge.runtime.backends.litert",
    "bell_edge.runtime.engine",
    "bell_edge.runtime.quality",
    "bell_edge.runtime.monitor",
]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_imports_without_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("module", [m for m in TORCH_FREE if m.startswith("bell_edge.runtime")])
def test_runtime_imports_no_record_reader(module):
    """What a monitor embeds needs neither wfdb nor pandas (records are read outside it)."""
    code = (
        f"import sys, {module}; "
        "assert not {'wfdb', 'pandas'} & set(sys.modules), 'wfdb or pandas imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

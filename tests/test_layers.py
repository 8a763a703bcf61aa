"""The import graph runs one way: no module imports a layer above its own, and the data layer
and the runtime import no torch (read from the source, function-level imports included)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bell_edge"
# Lowest first. "base": the stdlib-level modules every layer may use. The runtime sits on the
# data layer (its preprocessing) and below everything that needs torch.
LAYERS = ("base", "data", "runtime", "models", "ssl", "train", "export", "compress", "bench",
          "top")  # fmt: skip
BASE = {"config", "errors", "files", "metrics"}
TOP = {"cli", "demo", "replay"}
TORCH_FREE = ("data", "runtime")
_STDLIB = sys.stdlib_module_names | {"__future__"}
# sleepecg: the maintained QRS detector the monitor's beats come from (numpy + a compiled core).
RUNTIME_THIRD_PARTY = {
    "numpy", "scipy", "onnxruntime", "tensorrt", "cuda", "ai_edge_litert", "sleepecg",
}  # fmt: skip


def layer(module: str) -> str:
    """The layer of `bell_edge.X[.Y...]`."""
    top = module.split(".")[1] if "." in module else ""
    if top in BASE:
        return "base"
    if top in TOP or top == "":
        return "top"
    if top not in LAYERS:
        raise AssertionError(f"{module}: no layer assigned; add it to tests/test_layers.py")
    return top


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path, module: str) -> set[str]:
    """Every module `path` imports, anywhere in the file (relative imports resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                package = package if path.name == "__init__.py" else package[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


MODULES = modules()


def test_every_module_has_a_layer():
    assert {m: layer(m) for m in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_layer_above(module):
    own = LAYERS.index(layer(module))
    above = sorted(
        name
        for name in imports(MODULES[module], module)
        if name in MODULES and LAYERS.index(layer(name)) > own
    )
    assert not above, f"{module} ({layer(module)}) imports a higher layer: {above}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) in TORCH_FREE))
def test_data_and_runtime_import_no_torch(module):
    found = {name.split(".")[0] for name in imports(MODULES[module], module)}
    assert not found & {"torch", "torchvision", "torch_pruning"}, module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) == "runtime"))
def test_runtime_third_party_imports(module):
    """The runtime takes numpy, scipy, onnxruntime and the optional backends' own modules."""
    names = {name.split(".")[0] for name in imports(MODULES[module], module)}
    third_party = {n for n in names if n != "bell_edge" and n not in _STDLIB}
    assert third_party <= RUNTIME_THIRD_PARTY, f"{module}: {third_party - RUNTIME_THIRD_PARTY}"


# What the runtime takes from the rest of the package: the training preprocessing and lead
# names from the torch-free data layer, and the stdlib-only config dataclasses and error types.
RUNTIME_FROM_PACKAGE = {"bell_edge.data.preprocess", "bell_edge.data.leads", "bell_edge.config",
                        "bell_edge.errors"}  # fmt: skip


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) == "runtime"))
def test_runtime_package_imports(module):
    found = {n for n in imports(MODULES[module], module) if n in MODULES}
    outside = {n for n in found if not n.startswith("bell_edge.runtime")}
    assert outside <= RUNTIME_FROM_PACKAGE, f"{module}: {outside - RUNTIME_FROM_PACKAGE}"


def test_the_check_sees_an_upward_import(tmp_path):
    """The parser resolves relative and function-level imports (else the checks prove nothing)."""
    path = tmp_path / "probe.py"
    path.write_text(
        "def f():\n    from ..train import finetune\n    import bell_edge.bench.latency\n"
    )
    found = imports(path, "bell_edge.compress.probe")
    assert {"bell_edge.train.finetune", "bell_edge.bench.latency"} <= found
    init = tmp_path / "__init__.py"
    init.write_text("from .engine import Engine\n")
    assert "bell_edge.runtime.engine" in imports(init, "bell_edge.runtime")
    assert layer("bell_edge.bench.latency") == "bench"


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if layer(m) in ("export", "compress", "bench"))
)
def test_deployment_layers_need_no_trainer(module):
    """Export, compression and benchmarks take the trained artifact from `models`, never
    `train` (the pruning recovery gets its fine-tuning function from the caller)."""
    found = sorted(n for n in imports(MODULES[module], module) if n.startswith("bell_edge.train"))
    assert not found, f"{module} imports {found}"

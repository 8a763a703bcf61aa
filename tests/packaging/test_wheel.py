"""A fresh-machine check: the wheel installs into a new venv and its CLI runs from there.

The new venv sees the dev venv's third-party packages through a .pth line (no network here), but
not the editable bell_edge, so missing package data shows. Undeclared dependencies are caught by
comparing every third-party import in the package with the wheel's Requires-Dist.
"""

from __future__ import annotations

import ast
import email
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (found,) = dist.glob("bell_edge-*.whl")
    return found


def test_wheel_installs_and_runs_in_a_fresh_venv(wheel, ptbxl100, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "dev-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    cli = env_dir / "bin" / "bell-edge"
    where = subprocess.run(
        [str(python), "-c", "import bell_edge; print(bell_edge.__file__)"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert str(env_dir) in where  # the installed wheel, not the checkout
    assert subprocess.run([str(cli), "--help"], capture_output=True, cwd=tmp_path).returncode == 0
    inspect = subprocess.run(
        [str(cli), "data", "inspect", str(ptbxl100), "--json"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["records"] == 1625

    # Installed, the checkout's ../shared/data is not there: $BELL_EDGE_DATA, else a one-line
    # error on how to get PTB-XL.
    env = {k: v for k, v in os.environ.items() if k not in ("BELL_EDGE_DATA", "PYTHONPATH")}
    resolve = "from bell_edge.data.paths import resolve_data; print(resolve_data())"
    found = subprocess.run([str(python), "-c", resolve], capture_output=True, text=True,
                           cwd=tmp_path, env={**env, "BELL_EDGE_DATA": str(ptbxl100)})  # fmt: skip
    assert found.stdout.strip() == str(ptbxl100), found.stderr
    demo = subprocess.run([str(cli), "demo", "--out", "demo_out"], capture_output=True,
                          text=True, cwd=tmp_path, env=env)  # fmt: skip
    assert demo.returncode == 2 and "Traceback" not in demo.stderr, demo.stderr
    assert "bell-edge data download ptbxl" in demo.stderr


def _third_party_imports() -> set[str]:
    names = set()
    for file in (ROOT / "bell_edge").rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "bell_edge"}


def test_every_imported_package_is_declared(wheel):
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        requires = email.message_from_bytes(z.read(meta)).get_all("Requires-Dist") or []
    declared = {
        re.split(r"[ ;<>=!\[]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requires
    }
    providers = md.packages_distributions()
    optional = {
        "tensorrt",
        "cuda",
        "neural_compressor",
        "pycuda",
        "ai_edge_litert",
        "litert_torch",
        "ai_edge_quantizer",
    }
    # GPU, LiteRT and inc extras, imported lazily
    missing = {
        name: providers.get(name, ["?"])
        for name in _third_party_imports() - optional
        if not {d.lower().replace("_", "-") for d in providers.get(name, [name])} & declared
    }
    assert not missing, f"imported but not in Requires-Dist: {missing}"

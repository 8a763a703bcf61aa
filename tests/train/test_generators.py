"""Every random generator of the training loops is made on the batch's device, in one helper."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

from bell_edge.train.device import generator

PACKAGE = Path(__file__).resolve().parents[2] / "bell_edge"
# ssl sits below train (it cannot import train.device); its augmenter already passes the device.
ALLOWED = {"train/device.py", "ssl/augment.py"}


def test_helper_makes_a_seeded_generator_on_the_device():
    g = generator(torch.device("cpu"), 7)
    assert g.device.type == "cpu"
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=generator("cpu", 7)))


def test_no_generator_is_made_elsewhere():
    found = []
    for file in sorted(PACKAGE.rglob("*.py")):
        rel = file.relative_to(PACKAGE).as_posix()
        if rel in ALLOWED:
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "Generator"
                    and ast.unparse(node.func.value) == "torch"):  # fmt: skip
                found.append(f"{rel}:{node.lineno}")
    assert found == [], f"torch.Generator made outside train/device.generator: {found}"

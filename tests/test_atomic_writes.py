"""Every file the package writes goes through bell_edge/files.py (issue 14, item 6).

A write call (write_text, open for writing, np.save, torch.save, savefig, json.dump, ...) is
allowed only inside a `with` block of one of files.py's staging helpers or of a private
temporary folder, or in a function handed such a staged path as its parameter `tmp`. files.py
itself is the one module that writes in place.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bell_edge"
STAGING = {"staged_file", "staged_dir", "resumable", "appending", "TemporaryDirectory"}
WRITE_METHODS = {"write_text", "write_bytes", "savefig", "to_csv", "tofile", "touch",
                 "symlink_to", "rename", "export_chrome_trace"}  # fmt: skip
WRITE_FUNCTIONS = {
    "np.save", "np.savez", "np.savez_compressed", "numpy.save", "torch.save", "onnx.save",
    "onnx.save_model", "json.dump", "pickle.dump", "shutil.copy", "shutil.copyfile",
    "shutil.copy2", "shutil.copytree", "shutil.move", "os.replace", "os.rename", "os.symlink",
    "torch.onnx.export",
}  # fmt: skip


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _writes_mode(call: ast.Call, position: int) -> bool:
    mode = next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None and len(call.args) > position:
        mode = call.args[position]
    if mode is None:
        return False
    if isinstance(mode, ast.Constant):
        return isinstance(mode.value, str) and any(c in mode.value for c in "wax+")
    return isinstance(mode, ast.Name)  # a mode in a variable: assume it writes


def _is_write(call: ast.Call) -> bool:
    func = call.func
    if _name(func) in WRITE_FUNCTIONS:
        return True
    if isinstance(func, ast.Name) and func.id == "open":
        return _writes_mode(call, 1)
    if isinstance(func, ast.Attribute):
        if func.attr == "open":
            return _writes_mode(call, 0)  # Path.open(mode)
        return func.attr in WRITE_METHODS
    return False


def _stages(item: ast.withitem) -> bool:
    expr = item.context_expr
    return isinstance(expr, ast.Call) and _name(expr.func).split(".")[-1] in STAGING


class _Finder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.staged = [False]
        self.found: list[int] = []

    def visit_FunctionDef(self, node) -> None:
        params = [a.arg for a in node.args.args + node.args.kwonlyargs]
        self.staged.append("tmp" in params)
        self.generic_visit(node)
        self.staged.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            self.visit(item.context_expr)
        self.staged.append(self.staged[-1] or any(_stages(i) for i in node.items))
        for stmt in node.body:
            self.visit(stmt)
        self.staged.pop()

    def visit_Call(self, node: ast.Call) -> None:
        if _is_write(node) and not self.staged[-1]:
            self.found.append(node.lineno)
        self.generic_visit(node)


def direct_writes(source: str) -> list[int]:
    """Line numbers of the write calls in `source` that no staging helper covers."""
    finder = _Finder()
    finder.visit(ast.parse(source))
    return finder.found


def test_no_module_writes_a_file_directly():
    offenders = [
        f"{file.relative_to(PACKAGE.parent)}:{line}"
        for file in sorted(PACKAGE.rglob("*.py"))
        if file != PACKAGE / "files.py"
        for line in direct_writes(file.read_text())
    ]
    assert offenders == [], "write through bell_edge/files.py: " + ", ".join(offenders)


def test_the_check_finds_direct_writes_and_allows_staged_ones():
    bad = """
import json, numpy as np
def save(path, obj):
    path.write_text("x")
    with open(path, "w") as f:
        json.dump(obj, f)
    np.save(path, obj)
    with path.open(mode="a") as f:
        pass
    mode = "wb"
    path.open(mode)
"""
    assert direct_writes(bad) == [4, 5, 6, 7, 8, 11]
    good = """
from bell_edge.files import staged_file
def save(path, obj):
    with staged_file(path) as tmp:
        tmp.write_text("x")
    with open(path) as f:
        f.read()
    backend.open(Path(path), 1)
def _inner(obj, tmp):
    (tmp / "a.json").write_text("x")
"""
    assert direct_writes(good) == []

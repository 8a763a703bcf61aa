"""The CLI contract (issue 14, items 9 and 10): every command that makes something has --json,
and a value out of range is exit 2 with one line, never a traceback.

The walk covers every command of the group, nested ones too: each numeric option must carry a
range, and a value just outside it is refused while the arguments are parsed, before any work.
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from bell_edge.cli import main

JSON_COMMANDS = ("pretrain", "finetune", "export", "calibration build", "demo",
                 "experiment label-efficiency", "experiment data-curve", "evaluate", "prune",
                 "bench", "profile", "data inspect", "data prepare", "data download",
                 "pretrained list", "monitor")  # fmt: skip


def commands(group: click.Group = main, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


def outside(kind: click.ParamType) -> list[str]:
    """Values just outside the option's range (none for an unbounded side)."""
    values = []
    if kind.min is not None:
        values.append(kind.min if kind.min_open else kind.min - (1 if _is_int(kind) else 0.001))
    if kind.max is not None:
        values.append(kind.max if kind.max_open else kind.max + (1 if _is_int(kind) else 0.001))
    return [str(v) for v in values]


def _is_int(kind: click.ParamType) -> bool:
    return isinstance(kind, click.IntRange)


def numeric_cases():
    for path, command in commands():
        for param in command.params:
            if not isinstance(param, click.Option) or param.is_flag:
                continue
            if isinstance(param.type, click.types._NumberParamTypeBase):
                name = param.opts[-1]
                values = outside(param.type) if hasattr(param.type, "min") else ["unranged"]
                for value in values:
                    yield pytest.param(path, name, value, id=f"{' '.join(path)} {name} {value}")


def _one_line_refusal(args: list[str], option: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (args, result.output)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert option in lines[0]


@pytest.mark.parametrize(("path", "option", "value"), list(numeric_cases()))
def test_every_numeric_option_refuses_an_out_of_range_value(path, option, value):
    assert value != "unranged", f"{' '.join(path)} {option}: give the option a click range type"
    _one_line_refusal([*path, option, value], option)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["pretrain", "--epochs", "0"], "--epochs"),
        (["finetune", "--label-fraction", "-0.1"], "--label-fraction"),
        (["finetune", "--label-fraction", "0"], "--label-fraction"),
        (["finetune", "--label-fraction", "1.5"], "--label-fraction"),
        (["finetune", "--batch-size", "0"], "--batch-size"),
        (["prune", "x.pt", "--ratio", "1"], "--ratio"),
        (["prune", "x.pt", "--ratio", "-0.2"], "--ratio"),
        (["evaluate", "run", "--precision", "fp16"], "--precision"),
        (["monitor", "rec", "--precision", "int4"], "--precision"),
    ],
)
def test_the_reported_bad_values(args, option):
    _one_line_refusal(args, option)


def test_every_choice_option_refuses_an_unknown_value():
    for path, command in commands():
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.type, click.Choice):
                _one_line_refusal([*path, param.opts[-1], "no-such-choice"], param.opts[-1])


def test_commands_that_make_something_have_json():
    found = {" ".join(path): command for path, command in commands()}
    for name in JSON_COMMANDS:
        assert any("--json" in p.opts for p in found[name].params), f"{name} lacks --json"


def test_the_progress_default_for_logs_can_apply():
    """`main` sets TQDM_MININTERVAL for a log; tqdm reads it when first imported, so nothing
    may import tqdm before `main` runs."""
    import subprocess
    import sys

    code = "import sys, bell_edge.cli; print('tqdm' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"  # fmt: skip

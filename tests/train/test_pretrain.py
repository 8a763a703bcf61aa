"""Pretraining on real ECGs: outputs, learning, checkpoints, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bell_edge.cli import main
from bell_edge.config import PretrainConfig, load_toml, replace
from bell_edge.models.heads import ECGClassifier
from bell_edge.train import checkpoint
from bell_edge.train.pretrain import encoder_source, load_encoder, pretrain


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_cli_run_leaves_its_files(tmp_path, tiny_config, ptbxl_cache):
    run = tmp_path / "run"
    args = ["pretrain", "--data", ptbxl_cache.root, "--out", run, "--config", tiny_config,
            "--max-steps", "6", "--json"]  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads((run / "summary.json").read_text())
    assert {"checkpoint.pt", "config.toml", "metrics.jsonl", "encoder.pt"} <= {
        p.name for p in run.iterdir()
    }
    assert load_toml(PretrainConfig, run / "config.toml") == load_toml(PretrainConfig, tiny_config)
    rows = _metrics(run)
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert {"loss", "intra", "inter", "lr", "momentum", "collapse_std", "samples_per_s"} <= set(
        rows[0]
    )
    # A second run into the same folder is refused; the encoder loads strictly into a classifier.
    again = CliRunner().invoke(main, [str(a) for a in args])
    assert again.exit_code == 2 and "--force" in again.stderr
    model_cfg, _, encoder, method = load_encoder(run)
    assert method == "bell"
    ECGClassifier(model_cfg).encoder.load_state_dict(encoder, strict=True)


def test_resume_starts_a_new_run_and_refuses_a_foreign_folder(tmp_path, tiny_config, ptbxl_cache):
    # One command starts a background run and restarts it: --resume in a missing folder trains.
    run = tmp_path / "run"
    args = ["pretrain", "--data", ptbxl_cache.root, "--out", run, "--config", tiny_config,
            "--max-steps", "2", "--resume"]  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "starting the run" in result.stderr
    assert [r["step"] for r in _metrics(run)] == [1, 2]
    # A resume that would change the recipe or the run's length is refused, naming the change.
    for extra, says in ((["--gamma", "0.3"], "gamma = 0.3, but the run has 0.8"),
                        (["--max-steps", "3"], "3 steps in all, but the run has 2")):  # fmt: skip
        changed = CliRunner().invoke(main, [str(a) for a in args] + extra)
        assert changed.exit_code == 2 and says in changed.stderr, changed.output
    assert [r["step"] for r in _metrics(run)] == [1, 2]
    # A folder with other files and no checkpoint is not taken over.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a run")
    args[4] = other
    refused = CliRunner().invoke(main, [str(a) for a in args])
    assert refused.exit_code == 2
    assert "no checkpoint.pt to resume" in refused.stderr
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_loss_falls_and_does_not_collapse(tmp_path, tiny_config, ptbxl_cache):
    cfg = replace(load_toml(PretrainConfig, tiny_config), epochs=6, checkpoint_every=1000)
    summary = pretrain(ptbxl_cache.root, tmp_path / "run", cfg, progress=False)
    rows = _metrics(tmp_path / "run")
    assert summary["steps"] == len(rows) == 6 * (1442 // 32)
    first = np.mean([r["loss"] for r in rows[:20]])
    last = np.mean([r["loss"] for r in rows[-20:]])
    assert last < 0.6 * first, (first, last)
    assert min(r["collapse_std"] for r in rows[-20:]) > 0.05  # 1/sqrt(16) = 0.25 is the ideal


def test_checkpoint_round_trip_is_exact(tmp_path):
    state = {"w": torch.randn(3, 4), "step": 7, "nested": {"b": torch.arange(5)}}
    checkpoint.save(state, tmp_path / "c.pt")
    back = checkpoint.load(tmp_path / "c.pt")
    assert back["step"] == 7
    assert torch.equal(back["w"], state["w"]) and torch.equal(
        back["nested"]["b"], state["nested"]["b"]
    )
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind


def test_foreign_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a readable bell-edge checkpoint"):
        checkpoint.load(tmp_path / "evil.pt")


# Runs the CLI in a child that SIGKILLs itself as it is about to train step KILL_AT (0-based):
# a kill at a known step, after the checkpoint of step 12 and the log lines of steps 13 and 14.
KILL_AT, CHECKPOINTED = 14, 12
KILLER = """
import os, signal, sys
from bell_edge.cli import main
from bell_edge.train import pretrain

train_step = pretrain._train_step

def killing(*args):
    if args[7] == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return train_step(*args)

pretrain._train_step = killing
main(sys.argv[1:])
"""


def test_kill_and_resume_continues_the_same_curve(tmp_path, tiny_config, ptbxl_cache):
    steps = 24
    reference = tmp_path / "reference"
    cfg = replace(load_toml(PretrainConfig, tiny_config), epochs=2)
    pretrain(ptbxl_cache.root, reference, cfg, progress=False, max_steps=steps)

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-c", KILLER, "pretrain", "--data", str(ptbxl_cache.root),
           "--out", str(killed), "--config", str(tiny_config), "--epochs", "2",
           "--max-steps", str(steps)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "KILL_AT": str(KILL_AT)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert checkpoint.load(killed / "checkpoint.pt")["step"] == CHECKPOINTED
    assert [r["step"] for r in _metrics(killed)] == list(range(1, KILL_AT + 1))

    result = CliRunner().invoke(
        main,
        [
            "pretrain",
            "--data",
            str(ptbxl_cache.root),
            "--out",
            str(killed),
            "--resume",
            "--max-steps",
            str(steps),
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    got, want = _metrics(killed), _metrics(reference)
    assert [r["step"] for r in got] == list(range(1, steps + 1))
    np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in want], rtol=1e-4)


def test_ctrl_c_saves_the_step_it_falls_in_and_resume_goes_on_exactly(
    tmp_path, tiny_config, ptbxl_cache, monkeypatch
):
    from bell_edge.train import pretrain as module

    steps, reference, run = 10, tmp_path / "reference", tmp_path / "run"
    cfg = replace(load_toml(PretrainConfig, tiny_config), epochs=1)  # checkpoints every 4 steps
    pretrain(ptbxl_cache.root, reference, cfg, progress=False, max_steps=steps)
    train_step = module._train_step

    def interrupting(*args):
        if args[7] == 5:  # Ctrl-C in the middle of the 6th step
            os.kill(os.getpid(), signal.SIGINT)
        return train_step(*args)

    monkeypatch.setattr(module, "_train_step", interrupting)
    args = ["pretrain", "--data", str(ptbxl_cache.root), "--out", str(run), "--config",
            str(tiny_config), "--epochs", "1", "--max-steps", str(steps), "--resume"]  # fmt: skip
    stopped = CliRunner().invoke(main, args)
    assert stopped.exit_code == 130 and "interrupted" in stopped.stderr, stopped.output
    assert checkpoint.load(run / "checkpoint.pt")["step"] == 6  # not 4: the step it fell in
    with pytest.raises(ValueError, match="an unfinished pretraining run"):  # not an init yet
        encoder_source(run)
    assert encoder_source(run / "encoder.pt") == run / "encoder.pt"  # unless named as it is
    monkeypatch.setattr(module, "_train_step", train_step)
    resumed = CliRunner().invoke(main, args)
    assert resumed.exit_code == 0, resumed.output
    got, want = _metrics(run), _metrics(reference)
    assert [r["step"] for r in got] == list(range(1, steps + 1))
    np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in want], rtol=1e-4)


def test_online_lead_drop_trains_and_a_bad_share_is_refused(tmp_path, tiny_config, ptbxl_cache):
    cfg = replace(load_toml(PretrainConfig, tiny_config), online_lead_drop=0.5)
    summary = pretrain(ptbxl_cache.root, tmp_path / "run", cfg, progress=False, max_steps=3)
    rows = _metrics(tmp_path / "run")
    assert summary["steps"] == 3 and all(np.isfinite(r["loss"]) for r in rows)
    # Dropped leads change the views the online network sees: not the run without them.
    plain = pretrain(ptbxl_cache.root, tmp_path / "plain", replace(cfg, online_lead_drop=0.0),
                     progress=False, max_steps=3)  # fmt: skip
    assert plain["steps"] == 3
    assert _metrics(tmp_path / "plain")[0]["loss"] != rows[0]["loss"]
    with pytest.raises(ValueError, match="online_lead_drop 1.0"):
        pretrain(ptbxl_cache.root, tmp_path / "bad", replace(cfg, online_lead_drop=1.0),
                 progress=False, max_steps=1)  # fmt: skip


def test_sync_bn_needs_cuda(tmp_path, tiny_config, ptbxl_cache):
    cfg = replace(load_toml(PretrainConfig, tiny_config), device="cpu", sync_bn=True)
    with pytest.raises(ValueError, match="--sync-bn needs CUDA"):
        pretrain(ptbxl_cache.root, tmp_path / "run", cfg, progress=False, max_steps=1)


def _broken_files(tmp_path):
    checkpoint.save({"w": torch.randn(64, 64)}, tmp_path / "good.pt")
    good = (tmp_path / "good.pt").read_bytes()
    return {
        "empty.pt": b"",
        "random.pt": np.random.default_rng(0).bytes(2000),
        "torn.pt": good[: len(good) // 2],
        "text.pt": b"not a checkpoint\n",
        "words.pt": b"this is not a checkpoint\n",  # IndexError inside torch's unpickler
    }


def test_each_broken_file_is_one_line_naming_it(tmp_path):
    for name, content in _broken_files(tmp_path).items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError) as info:
            checkpoint.load(tmp_path / name)
        message = str(info.value)
        assert message.startswith(f"{tmp_path / name}: not a readable bell-edge checkpoint")
        assert "\n" not in message


def test_objects_and_non_dicts_are_refused_in_one_line(tmp_path):
    from fractions import Fraction

    torch.save(Fraction(1, 3), tmp_path / "object.pt")  # a pickled Python object
    torch.save([1, 2, 3], tmp_path / "list.pt")  # readable, but no checkpoint is a list
    with pytest.raises(ValueError, match="weights-only loading refuses unread\\)$"):
        checkpoint.load(tmp_path / "object.pt")
    with pytest.raises(ValueError, match="list.pt: not a bell-edge checkpoint \\(a list"):
        checkpoint.load(tmp_path / "list.pt")


def test_an_error_not_about_the_file_is_not_disguised(tmp_path, monkeypatch):
    # A fault of the loader (here a TypeError) must surface, not read as "not a checkpoint".
    checkpoint.save({"w": torch.ones(2)}, tmp_path / "good.pt")

    def broken_load(*args, **kwargs):
        raise TypeError("a bug in the caller")

    monkeypatch.setattr(torch, "load", broken_load)
    with pytest.raises(TypeError, match="a bug in the caller"):
        checkpoint.load(tmp_path / "good.pt")

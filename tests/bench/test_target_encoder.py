"""benchmarks/target_encoder.py: the EMA target's encoder, loadable where the online one is."""

import subprocess
import sys
from pathlib import Path

import torch

from bell_edge.config import PretrainConfig, load_toml
from bell_edge.models.encoder import convert_layout
from bell_edge.models.heads import ECGClassifier
from bell_edge.train import checkpoint
from bell_edge.train.pretrain import load_encoder, pretrain

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "target_encoder.py"


def _script(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True)  # fmt: skip


def test_writes_the_target_encoder_and_refuses_to_overwrite(tmp_path, tiny_config, ptbxl_cache):
    run = tmp_path / "run"
    cfg = load_toml(PretrainConfig, tiny_config)
    pretrain(ptbxl_cache.root, run, cfg, progress=False, max_steps=4)
    out = tmp_path / "target.pt"
    done = _script(run, "--out", out)
    assert done.returncode == 0, done.stderr
    model_cfg, _, target, method = load_encoder(out)
    _, _, online, _ = load_encoder(run)
    assert method == "bell"
    ECGClassifier(model_cfg).encoder.load_state_dict(target, strict=True)
    # Every parameter is the EMA target's (BatchNorm statistics are re-estimated), not the online
    # network's: after 4 steps the target lags it.
    prefix = "target.encoder."
    state = checkpoint.load(run / "checkpoint.pt")["model"]
    ema = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if cfg.train_layout != cfg.model.layout:
        ema = convert_layout(ema, cfg.model.n_leads, to=cfg.model.layout)
    params = [
        k for k in target if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    ]
    assert params and all(torch.equal(target[k], ema[k]) for k in params)
    assert not all(torch.equal(target[k], online[k]) for k in params)
    again = _script(run, "--out", out)
    assert again.returncode != 0 and "exists" in again.stderr

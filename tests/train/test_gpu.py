"""GPU paths: pretraining (bf16), fine-tuning, prune recovery and export on CUDA (skipped where
there is no GPU)."""

from __future__ import annotations

import pytest
import torch

from bell_edge.config import PretrainConfig, load_toml, replace
from bell_edge.train.pretrain import pretrain

pytestmark = pytest.mark.gpu
TINY_MODEL = {"stem_width": 8, "stage_widths": (8, 16), "blocks_per_stage": (1, 1),
              "proj_hidden": 32, "proj_dim": 16}  # fmt: skip


def test_bf16_pretraining_on_cuda(tmp_path, tiny_config, ptbxl_cache):
    cfg = replace(load_toml(PretrainConfig, tiny_config), device="cuda", epochs=1)
    summary = pretrain(ptbxl_cache.root, tmp_path / "run", cfg, progress=False, max_steps=20)
    assert summary["device"].startswith("cuda")
    assert summary["steps"] == 20 and torch.isfinite(torch.tensor(summary["loss"]))


@pytest.mark.parametrize("mode", ["full", "linear"])
def test_finetuning_on_cuda(tmp_path, ptbxl_cache, mode):
    # Full fine-tuning augments on the GPU: a CPU generator there raised in torch.rand.
    from bell_edge.config import FinetuneConfig, ModelConfig
    from bell_edge.train.finetune import finetune

    cfg = FinetuneConfig(model=ModelConfig(**TINY_MODEL), epochs=2, label_fraction=0.1,
                         mode=mode, device="cuda")  # fmt: skip
    summary = finetune(ptbxl_cache.root, tmp_path / "run", cfg, progress=False)
    assert summary["epochs_run"] >= 1 and 0 < summary["val"]["macro_auroc"] <= 1


def test_prune_recovery_and_export_on_cuda(tmp_path, ptbxl_cache, ptbxl100):
    # A CUDA-trained checkpoint prunes, recovers on CUDA (the default device: auto) and exports.
    from bell_edge.compress.pipeline import export_bundle
    from bell_edge.compress.prune import prune_run
    from bell_edge.config import FinetuneConfig, ModelConfig
    from bell_edge.train.finetune import finetune

    cfg = FinetuneConfig(model=ModelConfig(**TINY_MODEL), epochs=2, label_fraction=0.1,
                         device="cuda")  # fmt: skip
    finetune(ptbxl_cache.root, tmp_path / "ft", cfg, progress=False)
    report = prune_run(tmp_path / "ft", 0.25, ptbxl_cache.root, tmp_path / "pruned", epochs=1,
                       progress=False)  # fmt: skip
    assert report["after"]["params"] < report["before"]["params"]
    bundle, _ = export_bundle(tmp_path / "ft", tmp_path / "bundle", int8=False, calib=ptbxl100)
    assert "model.onnx" in bundle.files

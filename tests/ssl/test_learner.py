from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from bell_edge.config import ModelConfig
from bell_edge.models import ECGClassifier
from bell_edge.ssl import BootstrapLearner, collapse_std

SMALL = ModelConfig(
    stem_width=8, stage_widths=(8, 16), blocks_per_stage=(1, 1), kernel_size=5,
    proj_hidden=32, proj_dim=16,
)  # fmt: skip
T = 256


def views(batch: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.randn(batch, 12, T), torch.randn(batch, 12, T)


@pytest.mark.parametrize("method", ["bell", "byol"])
def test_forward_gives_bounded_scalars_and_no_target_grads(method: str) -> None:
    torch.manual_seed(0)
    learner = BootstrapLearner(SMALL, method=method)
    out = learner(*views())
    assert set(out) == {"loss", "intra", "inter", "collapse_std"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in out.values())
    assert 0 <= out["loss"] <= 4
    if method == "byol":
        assert out["intra"] == out["inter"] == out["loss"]
    out["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in learner.target.parameters())
    assert all(p.grad is not None for p in learner.online.parameters())
    assert all(p.grad is not None for p in learner.predictor.parameters())


def test_bell_loss_mixes_intra_and_inter_with_gamma() -> None:
    learner = BootstrapLearner(SMALL, gamma=0.3)
    out = learner(*views())
    torch.testing.assert_close(out["loss"], 0.3 * out["intra"] + 0.7 * out["inter"])


def test_update_target_follows_online_after_a_step() -> None:
    torch.manual_seed(0)
    learner = BootstrapLearner(SMALL)
    start = {k: v.clone() for k, v in learner.target.state_dict().items()}
    assert all(torch.equal(v, learner.online.state_dict()[k]) for k, v in start.items())
    opt = torch.optim.SGD([p for p in learner.parameters() if p.requires_grad], lr=0.5)
    learner(*views())["loss"].backward()
    opt.step()
    learner.update_target(1.0)
    target = learner.target.state_dict()
    assert all(torch.equal(target[k], v) for k, v in start.items() if v.is_floating_point())
    learner.update_target(0.9)
    online = learner.online.state_dict()
    moved = [k for k, v in learner.target.state_dict().items() if not torch.equal(v, start[k])]
    assert any("running_mean" in k for k in moved) and any("weight" in k for k in moved)
    key = "encoder.branches.0.stem.0.weight"
    torch.testing.assert_close(
        learner.target.state_dict()[key], 0.9 * start[key] + 0.1 * online[key]
    )


def test_masked_lead_values_do_not_change_the_loss() -> None:
    torch.manual_seed(0)
    learner = BootstrapLearner(SMALL)
    v1, v2 = views()
    mask = torch.rand(8, 12) > 0.3
    out = learner(v1, v2, mask)
    noise = 50 * torch.randn_like(v1) * ~mask[..., None]
    torch.testing.assert_close(learner(v1 + noise, v2 - noise, mask)["loss"], out["loss"])


@pytest.mark.parametrize("method", ["bell", "byol"])
def test_online_masks_hide_leads_from_the_online_view_only(method: str) -> None:
    torch.manual_seed(0)
    learner = BootstrapLearner(SMALL, method=method)
    v1, v2 = views()
    online = torch.rand(8, 12) > 0.5, torch.rand(8, 12) > 0.5
    out = learner(v1, v2, None, online)
    hidden = 50 * torch.randn_like(v1) * ~online[0][..., None]
    # The online network never sees the hidden leads of view 1 ...
    torch.testing.assert_close(learner._predict(v1 + hidden, online[0]),
                               learner._predict(v1, online[0]))  # fmt: skip
    # ... but the target does: their latents are what the other leads must predict.
    assert not torch.allclose(learner(v1 + hidden, v2, None, online)["loss"], out["loss"])
    assert not torch.allclose(learner(v1, v2)["loss"], out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None for p in learner.online.parameters())


def test_encoder_state_dict_loads_into_the_classifier() -> None:
    learner = BootstrapLearner(SMALL)
    ECGClassifier(SMALL).encoder.load_state_dict(learner.encoder_state_dict(), strict=True)


def test_collapse_std_tells_collapse_from_spread() -> None:
    torch.manual_seed(0)
    assert collapse_std(torch.ones(64, 12, 16)) < 1e-6
    spread = collapse_std(torch.randn(4096, 12, 16))
    assert spread == pytest.approx(1 / math.sqrt(16), rel=0.05)
    mask = torch.zeros(64, 12, dtype=torch.bool)
    mask[:, 0] = True
    z = torch.ones(64, 12, 16)
    z[:, 1:] = torch.randn(64, 11, 16)  # only masked leads vary
    z[:, 0] = torch.randn(16)
    assert collapse_std(z, mask) < 1e-6


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="method"):
        BootstrapLearner(SMALL, method="simclr")
    with pytest.raises(ValueError, match="gamma"):
        BootstrapLearner(SMALL, gamma=1.5)


def test_bf16_autocast_keeps_the_loss_in_float32() -> None:
    torch.manual_seed(0)
    learner = BootstrapLearner(SMALL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = learner(*views())
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
    out["loss"].backward()


def test_runs_under_ddp_with_the_target_updated_on_the_module(tmp_path: Path) -> None:
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    store = f"file://{tmp_path / 'store'}"
    dist.init_process_group("gloo", init_method=store, rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        ddp = torch.nn.parallel.DistributedDataParallel(BootstrapLearner(SMALL))
        ddp(*views())["loss"].backward()
        before = ddp.module.target.state_dict()["projector.0.weight"].clone()
        torch.optim.SGD([p for p in ddp.parameters() if p.requires_grad], lr=0.5).step()
        ddp.module.update_target(0.5)
        assert not torch.equal(ddp.module.target.state_dict()["projector.0.weight"], before)
    finally:
        dist.destroy_process_group()


def test_lead_conditioned_predictor_starts_as_the_plain_one_and_learns_its_embedding() -> None:
    torch.manual_seed(0)
    plain = BootstrapLearner(SMALL)
    conditioned = BootstrapLearner(SMALL, lead_conditioned=True)
    conditioned.load_state_dict(plain.state_dict(), strict=False)
    a, b = plain(*views()), conditioned(*views())
    torch.testing.assert_close(a["loss"], b["loss"])  # zero embedding: same predictions
    b["loss"].backward()
    assert conditioned.lead_embedding.grad is not None
    assert float(conditioned.lead_embedding.grad.abs().sum()) > 0
    conditioned.lead_embedding.data.normal_()
    assert not torch.allclose(conditioned(*views())["inter"], a["inter"])
    with pytest.raises(ValueError, match="lead_conditioned"):
        BootstrapLearner(SMALL, method="byol", lead_conditioned=True)

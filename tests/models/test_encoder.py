from __future__ import annotations

import dataclasses

import pytest
import torch

from bell_edge.config import ModelConfig
from bell_edge.models import MultiLeadEncoder, convert_layout, count_macs, count_params

SMALL = ModelConfig(stem_width=8, stage_widths=(8, 16), kernel_size=5, blocks_per_stage=(1, 1))
T = 256
LAYOUTS = [{"layout": "modules"}, {"layout": "grouped"}, {"shared_weights": True}]


def make(seed: int = 0, **kw: object) -> MultiLeadEncoder:
    torch.manual_seed(seed)
    return MultiLeadEncoder(dataclasses.replace(SMALL, **kw))


def randomize_bn(encoder: MultiLeadEncoder) -> None:
    """Give BatchNorm non-trivial statistics so eval-mode comparisons mean something."""
    for m in encoder.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("kw", LAYOUTS)
def test_output_shape_and_feature_view(kw: dict) -> None:
    encoder = make(**kw)
    x = torch.randn(4, 12, T)
    z = encoder(x)
    assert z.shape == (4, 12, encoder.latent_dim) == (4, 12, 16)
    torch.testing.assert_close(encoder.features(x), z.flatten(1))


@pytest.mark.parametrize("kw", LAYOUTS)
def test_masked_leads_are_zero_and_ignored(kw: dict) -> None:
    encoder = make(**kw).train()  # batch statistics must not leak masked inputs either
    x = torch.randn(4, 12, T)
    mask = torch.rand(4, 12) > 0.3
    mask[:, 0] = True
    z = encoder(x, mask)
    assert (z[~mask] == 0).all()
    assert (z[mask].abs().sum(-1) > 0).all()
    x2 = torch.where(mask[:, :, None], x, 100 * torch.randn_like(x))
    torch.testing.assert_close(encoder(x2, mask), z)


def test_separate_leads_do_not_interact() -> None:
    encoder = make().eval()
    x = torch.randn(2, 12, T)
    x2 = x.clone()
    x2[:, 3] = torch.randn(2, T)
    changed = (encoder(x) - encoder(x2)).abs().sum(-1) > 0
    assert changed[:, 3].all() and not changed[:, [0, 1, 2, 4, 5]].any()


@pytest.mark.parametrize("train", [False, True])
def test_modules_and_grouped_compute_the_same(train: bool) -> None:
    modules, grouped = make(seed=0), make(seed=1, layout="grouped")
    randomize_bn(modules)
    grouped.load_state_dict(convert_layout(modules.state_dict(), 12, to="grouped"), strict=True)
    modules.train(train)
    grouped.train(train)
    x = torch.randn(3, 12, T)
    torch.testing.assert_close(grouped(x), modules(x), atol=1e-5, rtol=1e-4)
    back = convert_layout(grouped.state_dict(), 12, to="modules")
    for key, value in modules.state_dict().items():
        torch.testing.assert_close(back[key], value)


def test_shared_weights_fold_leads_into_the_batch() -> None:
    encoder = make(shared_weights=True).eval()
    randomize_bn(encoder)
    x = torch.randn(2, 12, T)
    per_lead = torch.stack([encoder.branch(x[:, i : i + 1]).flatten(1) for i in range(12)], 1)
    torch.testing.assert_close(encoder(x), per_lead)
    assert count_params(make()) == 12 * count_params(encoder)


def test_macs_match_the_conv_arithmetic_for_every_layout() -> None:
    k, ch = SMALL.kernel_size, (8, 8, 8, 16, 16)
    lengths = [T // 2, T // 4, T // 4, T // 8, T // 8]  # stem, block1 (conv1, conv2), block2 ...
    convs = sum(n * c_in * c * k for n, c_in, c in zip(lengths, (1, *ch[:-1]), ch, strict=True))
    skips = T // 4 * 8 * 8 + T // 8 * 8 * 16
    expected = 12 * (convs + skips)
    assert {count_macs(dataclasses.replace(SMALL, **kw), T) for kw in LAYOUTS} == {expected}


def test_conv_widths_follow_config() -> None:
    cfg = dataclasses.replace(SMALL, channels=(8, 4, 8, 12, 16))
    for kw in LAYOUTS:
        assert MultiLeadEncoder(dataclasses.replace(cfg, **kw)).conv_widths() == cfg.channels


def test_bad_layout_and_input_raise() -> None:
    with pytest.raises(ValueError, match="layout"):
        make(layout="bogus")
    with pytest.raises(ValueError, match="expected input"):
        make()(torch.randn(2, 8, T))

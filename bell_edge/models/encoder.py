"""Multi-lead encoder: one 1-D ResNet branch per lead, all leads in one batched call.

Three layouts compute per-lead latents `(B, L, D)`:
- separate weights, `layout="modules"`: an nn.ModuleList of L branches (default; what pruning,
  export and fine-tuning use);
- separate weights, `layout="grouped"`: one branch whose convs have `groups=L`, built as Conv2d
  over `(B, L, 1, T)` in channels-last memory (same math; the fastest for CPU pretraining,
  `benchmarks/results/pretrain_throughput.md`);
- `shared_weights=True`: one branch, leads folded into the batch (same MACs, 1/L the params).

torch-pruning 1.6.1 prunes the "modules" layout (tested); it crashes on the shared layout's
batch-to-channel reshape, and the grouped layout is not verified.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from bell_edge.config import LAYOUTS, ModelConfig
from bell_edge.models.branch import Branch, branch_channels


class MultiLeadEncoder(nn.Module):
    """`(B, L, T)` ECG + optional bool lead mask `(B, L)` -> per-lead latents `(B, L, D)`.

    A missing lead (mask False) has its input zeroed and its latent set to zero.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_leads = cfg.n_leads
        self.layout = "shared" if cfg.shared_weights else cfg.layout
        if self.layout == "shared":
            self.branch = Branch(cfg)
        elif self.layout == "modules":
            self.branches = nn.ModuleList(Branch(cfg) for _ in range(cfg.n_leads))
        else:
            self.grouped = Branch(cfg, groups=cfg.n_leads, planar=True).to(
                memory_format=torch.channels_last
            )
        self._latent_dim = branch_channels(cfg)[-1]

    @property
    def latent_dim(self) -> int:
        """D, the width of one lead's latent."""
        return self._latent_dim

    def _pooled(self, x: Tensor) -> Tensor:
        """`(B, L, T) -> (B, L*D, 1)`, lead-major; branches are concatenated before any flatten."""
        if self.layout == "modules":
            return torch.cat([b(x[:, i : i + 1]) for i, b in enumerate(self.branches)], dim=1)
        if self.layout == "grouped":
            planar = x[:, :, None].contiguous(memory_format=torch.channels_last)
            return self.grouped(planar).flatten(2)
        batch, leads, t = x.shape
        pooled = self.branch(x.reshape(batch * leads, 1, t))
        return pooled.reshape(batch, leads * self.latent_dim, 1)

    def features(self, x: Tensor, lead_mask: Tensor | None = None) -> Tensor:
        """Classifier view: the L lead latents concatenated, `(B, L*D)`."""
        if x.ndim != 3 or x.shape[1] != self.n_leads:
            shape = tuple(x.shape)
            raise ValueError(f"expected input (batch, {self.n_leads}, samples), got {shape}")
        if lead_mask is None:
            return self._pooled(x).flatten(1)
        mask = lead_mask.to(x.dtype)
        feats = self._pooled(x * mask[:, :, None]).flatten(1)
        return feats * mask.repeat_interleave(self.latent_dim, dim=1).to(feats.dtype)

    def forward(self, x: Tensor, lead_mask: Tensor | None = None) -> Tensor:
        return self.features(x, lead_mask).unflatten(1, (self.n_leads, self.latent_dim))

    def conv_widths(self) -> tuple[int, ...]:
        """Per-lead conv widths as the module stands now (e.g. after in-place pruning).

        This is what `ModelConfig.channels` must hold to rebuild the encoder from a state dict.
        """
        if self.layout == "modules":
            branches = list(self.branches)
        else:
            branches = [self.grouped if self.layout == "grouped" else self.branch]
        widths = {b.widths() for b in branches}
        if len(widths) != 1:
            raise ValueError(f"lead branches differ in width, no single config fits: {widths}")
        return widths.pop()


def convert_layout(state_dict: Mapping[str, Tensor], n_leads: int, to: str) -> dict[str, Tensor]:
    """Map a separate-weights encoder state dict between the "modules" and "grouped" layouts.

    Grouped tensors are the per-lead tensors concatenated along dim 0 (lead-major), with conv
    weights `(out, in, 1, k)` where the modules layout has `(out, in, k)`, so the two layouts
    compute the same function once converted.
    """
    if to == "grouped":
        names = {k.split(".", 2)[2] for k in state_dict if k.startswith("branches.")}
        out = {}
        for name in sorted(names):
            parts = [state_dict[f"branches.{g}.{name}"] for g in range(n_leads)]
            if parts[0].ndim == 0:
                out[f"grouped.{name}"] = parts[0].clone()
                continue
            value = torch.cat(parts)
            out[f"grouped.{name}"] = value.unsqueeze(2) if value.ndim == 3 else value
        return out
    if to == "modules":
        out = {}
        for key, value in state_dict.items():
            name = key.removeprefix("grouped.")
            if value.ndim == 4:
                value = value.squeeze(2).contiguous()
            parts = [value] * n_leads if value.ndim == 0 else value.chunk(n_leads, dim=0)
            out.update({f"branches.{g}.{name}": p.clone() for g, p in enumerate(parts)})
        return out
    raise ValueError(f"convert_layout: `to` must be one of {LAYOUTS}, got {to!r}")


def count_params(module: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def count_macs(cfg: ModelConfig, n_samples: int = 1000) -> int:
    """Multiply-accumulates of the encoder's convs for one `(L, n_samples)` window.

    Counted with forward hooks on a zero input; BatchNorm, ReLU, adds and pooling are ignored.
    The three layouts give the same count.
    """
    encoder = MultiLeadEncoder(cfg).eval()
    total = 0

    def hook(m: nn.Module, _inputs: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[-1]

    convs = (nn.Conv1d, nn.Conv2d)
    handles = [m.register_forward_hook(hook) for m in encoder.modules() if isinstance(m, convs)]
    with torch.no_grad():
        encoder(torch.zeros(1, cfg.n_leads, n_samples))
    for h in handles:
        h.remove()
    return total

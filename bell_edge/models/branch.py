"""One lead's 1-D ResNet branch, optionally replicated as `groups` independent copies.

The branch is built only from Conv1d, BatchNorm1d, ReLU and AdaptiveAvgPool1d so torch-pruning
can trace it. Its output stays `(B, C, 1)`: the encoder concatenates branches and flattens once.
"""

from __future__ import annotations

from torch import Tensor, nn

from bell_edge.config import ModelConfig


def branch_channels(cfg: ModelConfig) -> tuple[int, ...]:
    """Output width of every conv of one branch: stem, then (conv1, conv2) per residual block.

    Taken from `cfg.channels` when given (a pruned model; then `stage_widths` is ignored and
    `blocks_per_stage` only fixes the structure), else derived from the stage widths.
    `ModelConfig` has checked that the explicit widths form the residual structure.
    """
    if cfg.channels:
        return tuple(cfg.channels)
    widths = [cfg.stem_width]
    for width, n in zip(cfg.stage_widths, cfg.blocks_per_stage, strict=True):
        widths += [width, width] * n
    return tuple(widths)


def _conv_bn(
    c_in: int, c_out: int, kernel_size: int, stride: int, groups: int, planar: bool = False
) -> list[nn.Module]:
    """Conv + BatchNorm; `planar` builds the same conv as Conv2d over `(C, 1, T)` (kernel 1 x k)."""
    if planar:
        conv: nn.Module = nn.Conv2d(
            c_in * groups, c_out * groups, (1, kernel_size), stride=(1, stride),
            padding=(0, kernel_size // 2), groups=groups, bias=False,
        )  # fmt: skip
        return [conv, nn.BatchNorm2d(c_out * groups)]
    conv = nn.Conv1d(
        c_in * groups, c_out * groups, kernel_size, stride=stride,
        padding=kernel_size // 2, groups=groups, bias=False,
    )  # fmt: skip
    return [conv, nn.BatchNorm1d(c_out * groups)]


class BasicBlock(nn.Module):
    """Two convs with a residual skip; stride 2 and a 1x1 conv+BN projection when `downsample`."""

    def __init__(
        self, c_in: int, c_mid: int, c_out: int, kernel_size: int, downsample: bool, groups: int,
        planar: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        stride = 2 if downsample else 1
        self.body = nn.Sequential(
            *_conv_bn(c_in, c_mid, kernel_size, stride, groups, planar),
            nn.ReLU(),
            *_conv_bn(c_mid, c_out, kernel_size, 1, groups, planar),
        )
        skip = _conv_bn(c_in, c_out, 1, stride, groups, planar) if downsample else [nn.Identity()]
        self.skip = nn.Sequential(*skip)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.skip(x))


class Branch(nn.Module):
    """1-D ResNet `(B, groups, T) -> (B, groups * D, 1)`; `groups` leads run as grouped convs.

    With groups=1 this is one lead's branch. Output channels are lead-major: lead g owns
    channels `g*D .. (g+1)*D - 1`. The first block of every stage halves the time axis.
    `planar=True` builds every conv as Conv2d with a 1 x k kernel, for `(B, groups, 1, T)`
    inputs in channels-last memory: the same math, and oneDNN's fastest CPU training path.
    """

    def __init__(self, cfg: ModelConfig, groups: int = 1, planar: bool = False) -> None:
        super().__init__()
        widths = branch_channels(cfg)
        k = cfg.kernel_size
        self.stem = nn.Sequential(*_conv_bn(1, widths[0], k, 2, groups, planar), nn.ReLU())
        blocks: list[nn.Module] = []
        i = 1
        for n in cfg.blocks_per_stage:
            for block in range(n):
                c_in, c_mid, c_out = widths[i - 1], widths[i], widths[i + 1]
                blocks.append(BasicBlock(c_in, c_mid, c_out, k, block == 0, groups, planar))
                i += 2
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1) if planar else nn.AdaptiveAvgPool1d(1)
        self.groups = groups

    def widths(self) -> tuple[int, ...]:
        """Per-lead conv widths as the module stands now (changed by in-place pruning)."""
        convs = [self.stem[0]]
        for block in self.blocks:
            convs += [block.body[0], block.body[3]]
        return tuple(c.out_channels // self.groups for c in convs)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.blocks(self.stem(x)))

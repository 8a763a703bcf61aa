"""Typed configs: frozen dataclasses that round-trip through dicts, JSON and TOML.

Stdlib only: every layer (the torch-free runtime included) may import this module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from bell_edge.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CANONICAL_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)  # fmt: skip
SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")

C = TypeVar("C")


class ConfigError(InputError):
    """A config file or override that does not fit the dataclass."""


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """The one preprocessing shared by training and deployment."""

    fs: int = 100  # target sampling rate, Hz
    window_s: float = 10.0  # fixed window length, seconds
    band_hz: tuple[float, float] = (0.5, 40.0)  # zero-phase Butterworth band-pass
    filter_order: int = 4  # Butterworth order, as PTB-XL; applied forward and backward
    std_floor: float = 1e-3  # a lead whose std is below this is flat and stays 0

    @property
    def window_samples(self) -> int:
        return int(round(self.fs * self.window_s))

    def hash(self) -> str:
        return config_hash(self)


LAYOUTS = ("modules", "grouped")  # the branches as separate modules, or one grouped conv


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Multi-branch 1-D ResNet encoder and its heads.

    `channels` lists the output width of every conv of one branch in order (stem, then two per
    residual block). Empty means "derive from stem_width/stage_widths/blocks_per_stage"; a pruned
    model carries its explicit widths here so it can be rebuilt from config + state dict.
    """

    n_leads: int = 12
    stem_width: int = 16  # edge size: 0.74M parameters, 63M MACs per 12 x 1000 window
    stage_widths: tuple[int, ...] = (16, 32, 64)
    blocks_per_stage: tuple[int, ...] = (1, 1, 1)
    kernel_size: int = 7
    channels: tuple[int, ...] = ()
    shared_weights: bool = False
    layout: str = "modules"  # modules | grouped (separate weights); ignored when shared
    proj_hidden: int = 256
    proj_dim: int = 64
    n_classes: int = 5
    dropout: float = 0.2

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout = {self.layout!r}: must be modules or grouped")
        if len(self.stage_widths) != len(self.blocks_per_stage):
            raise ConfigError(f"stage_widths = {list(self.stage_widths)} and blocks_per_stage = "
                              f"{list(self.blocks_per_stage)}: must be as long")  # fmt: skip
        for name in ("stage_widths", "blocks_per_stage", "channels"):
            values = getattr(self, name)
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise ConfigError(f"{name} = {list(values)}: must be whole numbers >= 1")
        if self.channels:
            self._check_channels()
        _check_numbers(self, {
            "n_leads": AT_LEAST_ONE, "stem_width": AT_LEAST_ONE, "kernel_size": AT_LEAST_ONE,
            "proj_hidden": AT_LEAST_ONE, "proj_dim": AT_LEAST_ONE, "n_classes": AT_LEAST_ONE,
            "dropout": PROBABILITY,
        })  # fmt: skip

    def _check_channels(self) -> None:
        """Explicit widths (a pruned model's) that form the branch: a stem, two convs per
        residual block, and an unchanged width across every identity skip."""
        widths, blocks = self.channels, self.blocks_per_stage
        expected = 1 + 2 * sum(blocks)
        if len(widths) != expected:
            raise ConfigError(
                f"ModelConfig.channels has {len(widths)} widths, expected {expected} "
                f"(stem + 2 per block for blocks_per_stage={blocks})"
            )
        i, c_in = 1, widths[0]
        for stage, n in enumerate(blocks):
            for block in range(n):
                c_out = widths[i + 1]
                if block > 0 and c_out != c_in:
                    raise ConfigError(
                        f"ModelConfig.channels[{i + 1}] = {c_out}: block {block} of stage "
                        f"{stage} has an identity skip, so its output width must equal its "
                        f"input {c_in}"
                    )
                c_in, i = c_out, i + 2


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    crop_min: float = 0.5  # random resized crop keeps this fraction or more
    timeout_max: float = 0.5  # time-out masking span up to this fraction
    noise_std: float = 0.05
    scale_range: tuple[float, float] = (0.8, 1.2)
    wander_amp: float = 0.1
    wander_max_hz: float = 0.5
    per_lead: bool = True  # draw parameters per lead (True) or per record (False)


def _check_numbers(cfg: Any, rules: dict[str, tuple[Any, str]]) -> None:
    """One ConfigError naming the first setting outside its range (`rules`: name -> (test,
    the range in words)), so a bad value never reaches the training loop."""
    for name, (ok, text) in rules.items():
        value = getattr(cfg, name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not ok(value):
            raise ConfigError(f"{name} = {value!r}: must be {text}")


POSITIVE = (lambda v: v > 0, "positive")
AT_LEAST_ONE = (lambda v: v >= 1, "at least 1")
NOT_NEGATIVE = (lambda v: v >= 0, "0 or more")
SHARE = (lambda v: 0 < v <= 1, "in (0, 1]")
PROBABILITY = (lambda v: 0 <= v < 1, "in [0, 1)")


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    method: str = "bell"  # bell | byol
    gamma: float = 0.8
    # BELL: tell the predictor which lead it predicts (a learned target-lead embedding).
    predictor_lead_embedding: bool = False
    # Share of windows whose online view keeps only a monitor lead set or 2-3 random leads
    # (train.lead_sets.kept_leads); the target view keeps all, so those leads' latents are
    # predicted from the others. Drawn per view.
    online_lead_drop: float = 0.0
    epochs: int = 50
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4  # not applied to BatchNorm and bias parameters
    warmup_epochs: float = 2.0
    grad_clip: float = 3.0
    momentum_base: float = 0.996  # EMA momentum at step 0 (cosine to 1), lowered by target_travel
    # The EMA target must move away from its random init: momentum_base is lowered to
    # 1 - 2 * target_travel / steps where that is smaller, so that sum(1 - tau) over the run,
    # the number of e-foldings of the init's share of the target, is at least target_travel.
    target_travel: float = 8.0
    data_fraction: float = 1.0  # seeded share of the corpus' records (the pretraining-data curve)
    recalibrate_bn: bool = True  # re-estimate the encoder's BatchNorm stats on clean windows
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    sync_bn: bool = False
    checkpoint_every: int = 200  # steps
    split: str = "train"  # of folders that have splits; folders without splits give every record
    # The layout the learner trains in (same math; "grouped" is the fastest on the CPU, see
    # benchmarks/results/pretrain_throughput.md); encoder.pt is always saved as model.layout.
    train_layout: str = "grouped"
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig(crop_min=0.9)  # stretch <= 11%: keeps QRS/QT durations
    preprocess: PreprocessConfig = PreprocessConfig()

    def __post_init__(self):
        if self.train_layout not in LAYOUTS:
            raise ConfigError(f"train_layout = {self.train_layout!r}: must be modules or grouped")
        _check_numbers(self, {
            "gamma": ((lambda v: 0 <= v <= 1), "in [0, 1]"), "epochs": AT_LEAST_ONE,
            "batch_size": AT_LEAST_ONE, "lr": POSITIVE, "weight_decay": NOT_NEGATIVE,
            "warmup_epochs": NOT_NEGATIVE, "grad_clip": POSITIVE,
            "momentum_base": ((lambda v: 0 < v < 1), "in (0, 1)"),
            "target_travel": NOT_NEGATIVE, "data_fraction": SHARE,
            "checkpoint_every": AT_LEAST_ONE,
        })  # fmt: skip


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    mode: str = "full"  # linear | full
    label_fraction: float = 1.0
    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-3
    encoder_lr_scale: float = 1.0  # full mode: encoder lr = lr * this (0.3 measured worse)
    probe_epochs: int = 0  # full mode, pretrained init: fit the head on frozen features first
    weight_decay: float = 1e-3  # decoupled, on conv/linear weights only (not BatchNorm, bias)
    # Full mode, pretrained init: L2-SP (Li et al., 2018) pulls the encoder toward its
    # pretrained weights with this coefficient instead of decaying it toward zero (0 = off).
    l2sp: float = 0.0
    # Full mode: the encoder's lr is multiplied by this once per block below the top one
    # (layer-wise lr decay; 1 = every encoder layer at the same lr).
    layer_lr_decay: float = 1.0
    # Full mode, pretrained init: the encoder's BatchNorm layers keep their pretrained running
    # statistics (eval mode; their scale and shift still learn) instead of a small batch's.
    freeze_bn: bool = False
    patience: int = 10
    seed: int = 0
    device: str = "auto"
    tasks: tuple[str, ...] = ()  # label tasks (data.datasets.TASKS); () is the layout's own labels
    lead_dropout: float = 0.0  # full mode: share of training windows fed with only some leads
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig(  # milder than pretraining views
        crop_min=0.9, timeout_max=0.0, noise_std=0.02, scale_range=(0.9, 1.1), wander_amp=0.05
    )
    preprocess: PreprocessConfig = PreprocessConfig()

    def __post_init__(self):
        if self.mode not in ("linear", "full"):
            raise ConfigError(f"mode = {self.mode!r}: must be linear or full")
        _check_numbers(self, {
            "label_fraction": SHARE, "epochs": AT_LEAST_ONE, "batch_size": AT_LEAST_ONE,
            "lr": POSITIVE, "encoder_lr_scale": NOT_NEGATIVE, "probe_epochs": NOT_NEGATIVE,
            "weight_decay": NOT_NEGATIVE, "l2sp": NOT_NEGATIVE, "layer_lr_decay": SHARE,
            "patience": AT_LEAST_ONE, "lead_dropout": PROBABILITY,
        })  # fmt: skip


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict of builtins (tuples become lists), ready for JSON or TOML."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_hash(cfg: Any) -> str:
    """Stable sha256 of a config: key order and Python version do not change it."""
    blob = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def changed_setting(was: Any, now: Any, may_change: tuple[str, ...] = ()) -> tuple | None:
    """(dotted name, old value, new value) of the first setting in which config `now` differs
    from `was`, other than those in `may_change`; None when they agree."""
    old, new = _flat(to_dict(was)), _flat(to_dict(now))
    changed = (k for k in new if k not in may_change and new[k] != old.get(k))
    return next(((k, old.get(k), new[k]) for k in changed), None)


def _flat(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        flat.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return flat


def from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build `cls` from a (possibly partial) dict; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        known = ", ".join(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        where = f"{', '.join(unknown)} in {cls.__name__}"
        raise ConfigError(f"unknown setting {where} (known: {known})")
    kwargs = {name: _coerce(hints[name], value, name) for name, value in data.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, name: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a table, got {value!r}")
        return from_dict(hint, value)
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        item = args[0]
        return tuple(_coerce(item, v, name) for v in value)
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"{name}: expected {hint.__name__}, got {value!r}")
    return value


def replace(cfg: C, **overrides: Any) -> C:
    """`dataclasses.replace` that ignores None values (unset CLI flags)."""
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def load_toml(cls: type[C], path: str | Path) -> C:
    """`cls` from a TOML file of any of its fields; every failure is one line naming the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: unreadable ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a TOML file ({exc})") from None
    try:
        return from_dict(cls, data)
    except (ConfigError, TypeError, ValueError) as exc:  # ValueError: the class's own checks
        raise ConfigError(f"{path}: {exc}") from None


def dump_toml(cfg: Any) -> str:
    import tomli_w

    return tomli_w.dumps(to_dict(cfg))

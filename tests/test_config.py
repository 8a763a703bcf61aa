"""load_toml: every bad config file is one ConfigError line that names the file."""

import pytest

from bell_edge.config import ConfigError, FinetuneConfig, PretrainConfig, load_toml


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs = 3\nepoch = 4\n", "unknown setting epoch in PretrainConfig (known: "),
        ("[model]\nwidth = 8\n", "unknown setting width in ModelConfig"),
        ('epochs = "three"\n', "epochs: expected int, got 'three'"),
        ("epochs = \n", "not a TOML file"),
        (
            "[model]\nstage_widths = [8, 16]\n",
            "stage_widths = [8, 16] and blocks_per_stage = [1, 1, 1]: must be as long",
        ),  # fmt: skip
        ('[model]\nlayout = "flat"\n', "layout = 'flat': must be modules or grouped"),
        ('train_layout = "flat"\n', "train_layout = 'flat': must be modules or grouped"),
        (b"\xff\xfe", "not a TOML file"),
    ],
)
def test_bad_config_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "recipe.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as err:
        load_toml(PretrainConfig, path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_is_unreadable(tmp_path):
    with pytest.raises(ConfigError, match=r"missing.toml: unreadable \(No such file"):
        load_toml(FinetuneConfig, tmp_path / "missing.toml")


def test_partial_config_keeps_the_other_defaults(tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text("lr = 1\n")  # an int where a float is expected is taken as a float
    cfg = load_toml(FinetuneConfig, path)
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.epochs == FinetuneConfig().epochs

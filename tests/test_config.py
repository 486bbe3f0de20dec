"""The typed config schema: extends, overrides, unknown keys and wrong types are errors."""

import pytest

from wavegen.config import ModelConfig, Recipe, from_dict, load_recipe, parse_override
from wavegen.errors import WavegenError


def write(path, text):
    path.write_text(text)
    return path


def test_extends_merges_and_overrides(tmp_path):
    write(tmp_path / "base.yaml", "model:\n  layers: 12\n  stacks: 2\ntrain:\n  lr: 0.002\n")
    (tmp_path / "r").mkdir()
    rec = load_recipe(
        write(tmp_path / "r" / "config.yaml", "extends: ../base.yaml\nmodel:\n  layers: 6\n"),
        ["train.max_steps=10", "model.upsample_scales=[4, 4, 4, 4]"],
    )
    assert rec.name == "r"
    assert (rec.model.layers, rec.model.stacks, rec.train.lr, rec.train.max_steps) == (6, 2, 0.002, 10)
    assert isinstance(rec.train.lr, float) and rec.model.upsample_scales == [4, 4, 4, 4]


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path / "x.yaml", "model:\n  layerz: 3\n")
    with pytest.raises(WavegenError, match="unknown config key 'model.layerz'"):
        load_recipe(path)
    with pytest.raises(WavegenError, match="unknown config key 'nosuch'"):
        load_recipe(write(tmp_path / "y.yaml", "nosuch: {}\n"))


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.layers=abc", "model.layers.*integer"),
        ("model.layers=2.5", "model.layers.*integer"),
        ("train.precision=fp16", "train.precision must be one of auto, bf16, fp32"),
        ("train.lr=fast", "train.lr.*number"),
        ("model.upsample_scales=4", "upsample_scales.*list"),
        ("train.lr", "key=value"),
    ],
)
def test_overrides_are_type_checked(tmp_path, override, message):
    path = write(tmp_path / "x.yaml", "{}\n")
    with pytest.raises(WavegenError, match=message):
        load_recipe(path, [override])


def test_cross_field_checks(tmp_path):
    path = write(tmp_path / "x.yaml", "{}\n")
    with pytest.raises(WavegenError, match="multiply to 64.*256"):
        load_recipe(path, ["model.upsample_scales=[4,4,4]"])
    with pytest.raises(WavegenError, match="window_samples"):
        load_recipe(path, ["data.window_samples=1000"])
    with pytest.raises(WavegenError, match="unknown mel preset"):
        load_recipe(path, ["audio.preset=mfcc"])


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(WavegenError, match="recipe not found"):
        load_recipe(tmp_path / "none.yaml")
    with pytest.raises(WavegenError, match="not valid YAML"):
        load_recipe(write(tmp_path / "bad.yaml", "model: [unclosed\n"))


def test_round_trip_through_dict():
    rec = Recipe()
    assert from_dict(Recipe, rec.to_dict()) == rec
    assert from_dict(ModelConfig, {"layers": 30}).layers == 30
    assert parse_override("a.b.c=1") == {"a": {"b": {"c": 1}}}

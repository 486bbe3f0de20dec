"""The typed config schema: extends, overrides, unknown keys and wrong types are errors."""

import pytest

from wavegen.core.config import ModelConfig, Recipe, from_dict, load_recipe, parse_override
from wavegen.core.errors import WavegenError


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


# ---- validation of every key (#10 item 8) ------------------------------------------------------


@pytest.mark.parametrize("text", ["1e-4", "5e-4", "1E-4", "+2.5e-3", "3e2"])
def test_yaml_1_1_exponents_are_numbers_in_files_and_overrides(tmp_path, text):
    """YAML 1.1 reads 1e-4 (no dot) as a string; float keys accept it in recipes and --set."""
    expected = float(text)
    rec = load_recipe(write(tmp_path / "x.yaml", f"train:\n  lr: {text}\n  min_lr: 0\n"))
    assert rec.train.lr == expected and isinstance(rec.train.lr, float)
    rec = load_recipe(write(tmp_path / "y.yaml", "{}\n"), [f"train.lr={text}", "train.min_lr=0"])
    assert rec.train.lr == expected
    assert load_recipe(tmp_path / "y.yaml", ["train.betas=[5e-1, 0.9]"]).train.betas == [0.5, 0.9]


def test_integer_keys_accept_exponents_that_are_whole(tmp_path):
    rec = load_recipe(write(tmp_path / "x.yaml", "train:\n  max_steps: 1e6\n"))
    assert rec.train.max_steps == 1_000_000 and isinstance(rec.train.max_steps, int)
    with pytest.raises(WavegenError, match=r"train.max_steps.*integer.*'1.5e0'"):
        load_recipe(tmp_path / "x.yaml", ["train.max_steps=1.5e0"])


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "nan", "1e999"])
@pytest.mark.parametrize("key", ["train.lr", "audio.peak_level", "train.grad_clip", "audio.loudness_db"])
def test_non_finite_floats_are_refused(tmp_path, key, value):
    path = write(tmp_path / "x.yaml", "{}\n")
    with pytest.raises(WavegenError, match=rf"{key}'?: expected a (finite )?number") as err:
        load_recipe(path, [f"{key}={value}"])
    assert "\n" not in str(err.value)


RANGES = [
    ("data.batch_size=0", "data.batch_size must be at least 1, got 0"),
    ("data.num_workers=-1", "data.num_workers must be at least 0"),
    ("data.window_samples=0", "data.window_samples must be a positive multiple of the hop length"),
    ("data.window_samples=-256", "data.window_samples must be a positive multiple"),
    (
        "data.window_samples=1000",
        r"data.window_samples must be a positive multiple of the hop length \(256\)",
    ),
    ("data.valid_per_speaker=-1", "data.valid_per_speaker must be at least 0"),
    ("data.test_per_speaker=-2", "data.test_per_speaker must be at least 0"),
    ("data.split_seed=-1", "data.split_seed must be at least 0"),
    ("data.tts_mels_max_frame_diff=-1", "data.tts_mels_max_frame_diff must be at least 0"),
    ("data.tts_mels_params=stats.npz", "data.tts_mels_params is set, but data.tts_mels .* is not"),
    ("data.tts_mels_convention=ln", "data.tts_mels_convention must be one of auto, natural-log, log10"),
    ("data.held_out_speakers=['a', 'a']", "data.held_out_speakers lists 'a' twice"),
    ("data.held_out_speakers=['']", r"data.held_out_speakers\[0\] must be a speaker id"),
    ("model.stacks=0", "model.stacks must be at least 1"),
    ("model.layers=0", "model.layers must be at least 1"),
    ("model.layers=10", r"model.layers \(10\) must be a multiple of model.stacks \(3\)"),
    ("model.residual_channels=0", "model.residual_channels must be at least 1"),
    ("model.gate_channels=0", "model.gate_channels must be at least 2"),
    ("model.gate_channels=7", "model.gate_channels must be even"),
    ("model.skip_channels=0", "model.skip_channels must be at least 1"),
    ("model.quantize_channels=1", "model.quantize_channels must be at least 2"),
    ("model.kernel_size=1", "model.kernel_size must be at least 2"),
    ("model.cin_channels=-1", "model.cin_channels must be at least 0"),
    ("model.cin_pad=-1", "model.cin_pad must be at least 0"),
    ("model.upsample_scales=[16, 0, 16]", r"model.upsample_scales\[1\] must be at least 1"),
    ("model.n_speakers=-2", "model.n_speakers must be at least -1"),
    (
        "model.n_speakers=-1;model.gin_channels=0",
        "model.gin_channels must be at least 1 when model.n_speakers is not 0",
    ),
    ("audio.peak_level=0", r"audio.peak_level must be in \(0, 1\]"),
    ("audio.peak_level=1.5", r"audio.peak_level must be in \(0, 1\]"),
    ("audio.trim_top_db=-1", "audio.trim_top_db must be at least 0"),
    ("audio.min_seconds=-0.1", "audio.min_seconds must be at least 0"),
    ("audio.loudness_db=3", "audio.loudness_db must be at most 0"),
    ("train.max_steps=-1", "train.max_steps must be at least 0"),
    ("train.lr=0", "train.lr must be positive"),
    ("train.lr=-1e-3", "train.lr must be positive"),
    ("train.weight_decay=-0.1", "train.weight_decay must be at least 0"),
    ("train.betas=[0.9]", "train.betas must be two numbers"),
    ("train.betas=[0.9, 1.0]", r"train.betas\[1\] must be in \[0, 1\)"),
    ("train.betas=[-0.1, 0.9]", r"train.betas\[0\] must be in \[0, 1\)"),
    ("train.warmup_steps=-1", "train.warmup_steps must be at least 0"),
    ("train.decay_rate=0", r"train.decay_rate must be in \(0, 1\]"),
    ("train.decay_rate=1.5", r"train.decay_rate must be in \(0, 1\]"),
    ("train.decay_steps=0", "train.decay_steps must be at least 1"),
    ("train.min_lr=-1e-5", "train.min_lr must be at least 0"),
    ("train.min_lr=0.1", r"train.min_lr \(0.1\) must not exceed train.lr \(0.001\)"),
    ("train.grad_clip=-1", "train.grad_clip must be at least 0"),
    ("train.ema_decay=1", r"train.ema_decay must be in \[0, 1\)"),
    ("train.seed=-1", "train.seed must be at least 0"),
    ("train.log_interval=0", "train.log_interval must be at least 1"),
    ("train.valid_interval=0", "train.valid_interval must be at least 1"),
    ("train.valid_batches=0", "train.valid_batches must be at least 1"),
    ("train.sample_interval=0", "train.sample_interval must be at least 1"),
    ("train.sample_seconds=0", "train.sample_seconds must be positive"),
    ("train.checkpoint_interval=0", "train.checkpoint_interval must be at least 1"),
    ("train.keep_checkpoints=0", "train.keep_checkpoints must be at least 1"),
    ("name=''", "name must be a non-empty string"),
]


@pytest.mark.parametrize("override, message", RANGES)
def test_every_key_has_its_range(tmp_path, override, message):
    path = write(tmp_path / "x.yaml", "{}\n")
    with pytest.raises(WavegenError, match=message) as err:
        load_recipe(path, override.split(";"))
    assert "\n" not in str(err.value)


def test_every_field_is_covered_by_a_range_or_type_check():
    """Each field of the schema appears in RANGES above, or is a name/bool/path/precision key
    whose type check is its whole rule."""
    import dataclasses

    from wavegen.core.config import AudioConfig, DataConfig, TrainConfig

    typed_only = {
        "audio.preset",  # an unknown preset name is refused (test_cross_field_checks)
        "audio.normalize",
        "audio.mel_normalize",
        "data.corpus",
        "data.corpus_path",
        "data.mic",
        "data.tts_mels",  # a folder: wavegen.data.tts_mels.open_source checks it (tests/test_tts_mels.py)
        "data.tts_mels_trimmed",
        "train.optimizer",
        "train.decay",
        "train.precision",
    }
    covered = {item.split("=")[0] for overrides, _ in RANGES for item in overrides.split(";")} | typed_only
    for section, cls in (
        ("audio", AudioConfig),
        ("model", ModelConfig),
        ("data", DataConfig),
        ("train", TrainConfig),
    ):
        for f in dataclasses.fields(cls):
            assert f"{section}.{f.name}" in covered, f"{section}.{f.name} has no range test"


def test_a_recipe_built_in_python_is_validated_the_same_way():
    from wavegen.core.config import validate

    rec = Recipe()
    rec.data.batch_size = 0
    with pytest.raises(WavegenError, match="data.batch_size must be at least 1"):
        validate(rec)
    rec = Recipe()
    rec.train.lr = float("nan")
    with pytest.raises(WavegenError, match="train.lr.*finite number"):
        validate(rec)
    rec = Recipe()
    rec.model.layers = "30"
    with pytest.raises(WavegenError, match="model.layers.*integer"):
        validate(rec)
    rec = Recipe()
    rec.train.lr = "1e-4"  # only files and --set parse numbers from text
    with pytest.raises(WavegenError, match="train.lr.*number"):
        validate(rec)
    validate(Recipe())


def test_extends_cycles_types_and_missing_files(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(WavegenError, match=r"extends cycle: a.yaml -> b.yaml -> a.yaml"):
        load_recipe(tmp_path / "a.yaml")
    with pytest.raises(WavegenError, match=r"extends cycle: self.yaml -> self.yaml"):
        load_recipe(write(tmp_path / "self.yaml", "extends: self.yaml\n"))
    for value in ("[a.yaml]", "3", "{x: 1}", "''"):
        path = write(tmp_path / "t.yaml", f"extends: {value}\n")
        with pytest.raises(WavegenError, match=r"t.yaml: extends must be the path of a recipe file"):
            load_recipe(path)
    path = write(tmp_path / "m.yaml", "extends: ../nowhere/base.yaml\n")
    with pytest.raises(
        WavegenError, match=r"m.yaml: extends '../nowhere/base.yaml', but .*nowhere/base.yaml"
    ):
        load_recipe(path)


def test_recipe_encoding(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(WavegenError, match=r"latin1.yaml: not UTF-8 text \(byte 0xe9 at line 1\)"):
        load_recipe(path)
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffname: café\ntrain: {lr: 5e-4}\n".encode())
    rec = load_recipe(path)
    assert rec.name == "café" and rec.train.lr == 5e-4


def test_empty_sections_are_empty_mappings(tmp_path):
    rec = load_recipe(write(tmp_path / "x.yaml", "train:\nmodel:\n"))
    assert rec.train == Recipe().train

"""One model identity: the same for a run dir and its export, different for other weights."""

import torch

from tests.helpers import save_model_run
from wavegen.artifacts.export import export_model
from wavegen.artifacts.loader import load_model
from wavegen.core.config import ModelConfig
from wavegen.model import WaveNet
from wavegen.model.identity import model_sha256


def tiny(seed: int) -> WaveNet:
    torch.manual_seed(seed)
    return WaveNet(ModelConfig(layers=2, stacks=1, residual_channels=4, gate_channels=8, skip_channels=4))


def test_a_run_dir_and_its_export_are_one_model(tmp_path):
    model = tiny(0)
    run = save_model_run(tmp_path / "run", model)
    export = export_model(run, tmp_path / "export")
    digests = {model_sha256(load_model(p).model) for p in (run, export, export / "model.safetensors")}
    assert digests == {model_sha256(model)} and len(model_sha256(model)) == 64


def test_any_weight_or_setting_changes_it():
    model = tiny(0)
    before = model_sha256(model)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-6
    assert model_sha256(model) != before
    assert model_sha256(tiny(0)) == before and model_sha256(tiny(1)) != before

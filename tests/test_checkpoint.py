"""Checkpoints: atomic writes with checksums, safe loading, fallback past corrupt files, rotation."""

import errno
import hashlib
import logging
import os
import stat

import pytest
import torch

from wavegen.artifacts import checkpoint as ck
from wavegen.core.config import ModelConfig, Recipe
from wavegen.core.errors import WavegenError
from wavegen.model import WaveNet

SMALL = ModelConfig(layers=2, stacks=1, residual_channels=4, gate_channels=8, skip_channels=4)


def payload(step: int, ema_shift: float = 0.5) -> dict:
    torch.manual_seed(step)
    model = WaveNet(SMALL)
    ema = {k: v + ema_shift if v.is_floating_point() else v for k, v in model.state_dict().items()}
    recipe = Recipe(model=SMALL).to_dict()
    opt = torch.optim.Adam(model.parameters())
    model(torch.zeros(1, 512, dtype=torch.long), torch.zeros(1, 80, 6)).sum().backward()
    opt.step()
    return {
        "step": step,
        "model": model.state_dict(),
        "ema": ema,
        "optimizer": opt.state_dict(),
        "recipe": recipe,
        "rng": {"python": {"state": [1, 2, 3]}, "torch": torch.get_rng_state()},
    }


def write_steps(run_dir, steps):
    return [ck.save_checkpoint(ck.step_path(run_dir, s), payload(s)) for s in steps]


def test_roundtrip_with_weights_only_and_checksum(tmp_path):
    (path,) = write_steps(tmp_path, [5])
    assert path.name == "step_00000005.pt"
    digest = (path.parent / "step_00000005.pt.sha256").read_text().strip()
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    raw = torch.load(path, map_location="cpu", weights_only=True)  # no arbitrary unpickling
    loaded = ck.load_checkpoint(path)
    assert raw["format"] == loaded["format"] == "wavegen-checkpoint-1" and loaded["step"] == 5
    for key, value in payload(5)["model"].items():
        assert torch.equal(loaded["model"][key], value)
    assert loaded["optimizer"]["state"][0]["exp_avg"].abs().sum() > 0
    assert not list(tmp_path.glob("checkpoints/.*.tmp"))


def test_corrupt_newest_falls_back_with_a_warning(tmp_path, caplog):
    paths = write_steps(tmp_path, [1, 2, 3])
    assert ck.latest_checkpoint(tmp_path) == paths[2]
    data = bytearray(paths[2].read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    paths[2].write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="wavegen.artifacts.checkpoint"):
        assert ck.latest_checkpoint(tmp_path) == paths[1]
    assert "step_00000003.pt" in caplog.text and "sha256 mismatch" in caplog.text
    with pytest.raises(WavegenError, match="corrupt checkpoint"):
        ck.load_checkpoint(paths[2])
    paths[1].write_bytes(paths[1].read_bytes()[:1000])  # truncated, like a full disk
    assert ck.latest_checkpoint(tmp_path) == paths[0]


def test_checkpoint_without_checksum_is_skipped(tmp_path, caplog):
    """A kill between the .pt rename and its .sha256: the unverified file is not trusted."""
    paths = write_steps(tmp_path, [1, 2])
    (tmp_path / "checkpoints" / "step_00000002.pt.sha256").unlink()
    with caplog.at_level(logging.WARNING, logger="wavegen.artifacts.checkpoint"):
        assert ck.latest_checkpoint(tmp_path) == paths[0]
    assert "no checksum" in caplog.text
    assert ck.load_checkpoint(paths[1])["step"] == 2  # loading it explicitly still works (warns)


def test_interrupted_write_leaves_previous_checkpoints_intact(tmp_path, monkeypatch):
    (first,) = write_steps(tmp_path, [1])
    before = first.read_bytes()

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")  # what a SIGKILL mid-write leaves behind
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(ck.step_path(tmp_path, 2), payload(2))
    monkeypatch.undo()
    assert not ck.step_path(tmp_path, 2).exists()
    assert ck.latest_checkpoint(tmp_path) == first and first.read_bytes() == before
    # A temporary file left by a real SIGKILL is ignored, then cleaned up.
    stale = tmp_path / "checkpoints" / ".step_00000003.pt.abc123.tmp"
    stale.write_bytes(b"garbage")
    assert ck.latest_checkpoint(tmp_path) == first
    assert ck.remove_stale_temporaries(tmp_path) == [stale] and not stale.exists()


@pytest.mark.parametrize("killed_after", [0, 1])  # sidecar writes done before the kill
def test_replacing_best_in_place_is_verifiable_at_every_moment(tmp_path, monkeypatch, killed_after):
    best = ck.checkpoint_dir(tmp_path) / "best.pt"
    best.parent.mkdir(parents=True)
    ck.save_checkpoint(best, payload(1))
    real, calls = ck._write_sidecar, []

    def dying_write(path, digests):
        if len(calls) == killed_after:
            raise KeyboardInterrupt  # killed before this sidecar write
        calls.append(digests)
        real(path, digests)

    monkeypatch.setattr(ck, "_write_sidecar", dying_write)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(best, payload(2))
    monkeypatch.undo()
    assert ck.verify_checkpoint(best) is None
    # Killed before the old+new sidecar: the old file is still there (step 1); killed before the
    # final sidecar: the new file is in place (step 2) and the sidecar lists its digest too.
    assert ck.load_checkpoint(best)["step"] == killed_after + 1
    ck.save_checkpoint(best, payload(3))
    assert len(ck._sidecar_digests(best)) == 1 and ck.load_checkpoint(best)["step"] == 3
    best.write_bytes(best.read_bytes()[:-10])  # and a damaged file still fails
    assert "sha256 mismatch" in ck.verify_checkpoint(best)


def test_prune_keeps_the_newest_k_and_best(tmp_path):
    write_steps(tmp_path, [1, 2, 3, 4])
    ck.save_checkpoint(tmp_path / "checkpoints" / "best.pt", payload(1))
    removed = ck.prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in removed] == ["step_00000001.pt", "step_00000002.pt"]
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == [
        "best.pt",
        "best.pt.sha256",
        "step_00000003.pt",
        "step_00000003.pt.sha256",
        "step_00000004.pt",
        "step_00000004.pt.sha256",
    ]


def test_model_from_checkpoint_prefers_ema(tmp_path):
    (path,) = write_steps(tmp_path, [7])
    loaded = ck.load_checkpoint(path)
    ema_model = ck.model_from_checkpoint(loaded)
    raw_model = ck.model_from_checkpoint(loaded, use_ema=False)
    assert not ema_model.training
    w = "layers.0.conv.weight"
    assert torch.equal(ema_model.state_dict()[w], loaded["ema"][w])
    assert torch.equal(raw_model.state_dict()[w], loaded["model"][w])
    assert not torch.equal(ema_model.state_dict()[w], raw_model.state_dict()[w])


def test_foreign_files_are_clear_errors(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"\x80\x02not a checkpoint")  # binary junk (text is named as such: below)
    with pytest.raises(WavegenError, match="not a readable wavegen checkpoint"):
        ck.load_checkpoint(bad, verify=False)
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(WavegenError, match="not a wavegen checkpoint"):
        ck.load_checkpoint(bad, verify=False)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "wavegen-checkpoint-1", "x": Evil()}, bad)
    with pytest.raises(WavegenError, match="not a readable"):  # weights_only refuses to run it
        ck.load_checkpoint(bad, verify=False)
    with pytest.raises(WavegenError, match="no such checkpoint"):
        ck.load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "head, kind",
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "a WAV audio file"),
        (b"fLaC\x00\x00\x00\x22", "a FLAC audio file"),
        (b"\x93NUMPY\x01\x00", "a NumPy array (.npy)"),
        (b"\x89WGC\r\n\x1a\n", "a wavegen compressed file (.wgc)"),
    ],
)
def test_a_known_foreign_file_is_named_in_one_line_without_a_checksum_warning(tmp_path, caplog, head, kind):
    """A WAV given as the model once warned about a missing checksum file, then said
    "not a readable wavegen checkpoint (pop from empty list)"."""
    path = tmp_path / "given"
    path.write_bytes(head + bytes(64))
    with caplog.at_level(logging.WARNING), pytest.raises(WavegenError) as err:
        ck.load_checkpoint(path)
    assert str(err.value) == (
        f"{path}: {kind}, not a wavegen checkpoint; expected a run dir, an exported model folder "
        "or a checkpoint (.pt)"
    )
    assert caplog.records == []


def test_disk_full_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    """A simulated ENOSPC while the .pt is written: an error naming it, no temporary, no sidecar."""
    (first,) = write_steps(tmp_path, [1])
    real_open = open

    def full_disk_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if "w" in mode and str(file).endswith(".tmp") and ".step_00000002.pt." in str(file):
            f.close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return f

    monkeypatch.setattr("builtins.open", full_disk_open)
    path = ck.step_path(tmp_path, 2)
    with pytest.raises(WavegenError, match=r"step_00000002\.pt: cannot write: No space left on device"):
        ck.save_checkpoint(path, payload(2))
    monkeypatch.undo()
    assert sorted(p.name for p in first.parent.iterdir()) == ["step_00000001.pt", "step_00000001.pt.sha256"]


def test_checkpoints_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        (path,) = write_steps(tmp_path, [1])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.with_name(path.name + ".sha256").stat().st_mode) == 0o640


@pytest.mark.parametrize(
    "content, kind",
    [
        (b"", "an empty file"),
        (b"name: tiny\nmodel:\n  layers: 4\n", "a text file"),
        (b"ab" * 32 + b"  step_00000002.pt\n", "a text file"),
    ],
)
def test_an_empty_or_text_file_is_named_in_one_line_without_checksum_warning(tmp_path, caplog, content, kind):
    """A recipe YAML or a .sha256 sidecar given as the model said "no checksum file ...; loading it
    unverified" and then "not a readable wavegen checkpoint (pop from empty list)"."""
    path = tmp_path / "given.yaml"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING), pytest.raises(WavegenError) as err:
        ck.load_checkpoint(path)
    assert str(err.value).startswith(f"{path}: {kind}, not a wavegen checkpoint;")
    assert caplog.records == []


def test_an_unreadable_binary_file_never_suggests_turning_weights_only_off(tmp_path):
    """torch's weights_only error advises re-running torch.load with weights_only=False ("will
    likely succeed, but it can result in arbitrary code execution"): not advice to pass on."""
    path = tmp_path / "x.pt"
    path.write_bytes(b"\x80\x02garbage\xff\xfe" * 8)
    with pytest.raises(WavegenError) as err:
        ck.load_checkpoint(path, verify=False)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(f"{path}: not a readable wavegen checkpoint")

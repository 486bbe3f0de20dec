"""Training checkpoints: atomic writes, sha256 sidecars, safe loading, rotation.

A checkpoint ``step_XXXXXXXX.pt`` is written to a temporary file beside it, fsynced and renamed;
then ``step_XXXXXXXX.pt.sha256`` (the hex digest of the .pt bytes) is written the same way. A
process killed at any moment therefore leaves either the previous checkpoints untouched plus a
stray ``.*.tmp`` file (never matched by ``step_*.pt``), or a new .pt without its checksum, which
:func:`latest_checkpoint` skips. A file replaced in place (``best.pt``) stays verifiable
throughout: its sidecar lists the old and new digests until the new file is in place. Loading
uses ``torch.load(weights_only=True)``: only tensors and plain python types, never arbitrary
pickled objects.

Payload (format ``wavegen-checkpoint-1``): step, model, ema (state_dicts), optimizer, scheduler,
sampler, rng, recipe (resolved; model.n_speakers resolved), speakers, preset, valid_bits;
plus ema_updates and best_valid_bits used by resume, and init_from (None, or what a fine-tune
took from the model it started from: wavegen.training.init_from.InitReport).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import warnings
from pathlib import Path

import torch

from ..core.audio import atomic_path
from ..core.errors import WavegenError
from ..model import WaveNet
from .stored import checked_model_config

FORMAT = "wavegen-checkpoint-1"
log = logging.getLogger(__name__)
_STEP_NAME = re.compile(r"^step_(\d{8,})\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_path(run_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step_{step:08d}.pt"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    # The rename itself must reach the disk, or a power loss can bring back the old name.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` atomically to ``path`` and its sha256 to ``path.sha256``."""
    path = Path(path)
    payload = {"format": FORMAT, **payload}
    # Serialised in memory first: torch.save reports a full disk as an opaque RuntimeError
    # ("unexpected pos"), a plain file write as OSError(ENOSPC), which atomic_path names.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getbuffer()
    digest = hashlib.sha256(data).hexdigest()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
        if path.is_file() and _sidecar(path).is_file():
            # Replacing a checkpoint (best.pt): until the new file is in place the sidecar vouches
            # for the old and the new digest, so a kill between the two renames loses neither.
            _write_sidecar(path, _sidecar_digests(path) + [digest])
    _write_sidecar(path, [digest])
    _fsync_dir(path.parent)
    return path


def _write_sidecar(path: Path, digests: list[str]) -> None:
    with atomic_path(_sidecar(path)) as tmp:
        tmp.write_text("".join(d + "\n" for d in digests))


def _sidecar_digests(path: Path) -> list[str]:
    return [line.split()[0] for line in _sidecar(path).read_text().splitlines() if line.strip()]


def verify_checkpoint(path: str | Path) -> str | None:
    """None if ``path`` matches its .sha256 sidecar, else why not (one line)."""
    path = Path(path)
    side = _sidecar(path)
    if not path.is_file():
        return "file missing"
    if not side.is_file():
        return f"no checksum file {side.name} (interrupted write?)"
    expected = _sidecar_digests(path)
    actual = _sha256(path)
    if actual not in expected:
        shown = expected[-1][:12] if expected else "nothing"
        return f"sha256 mismatch (expected {shown}…, file has {actual[:12]}…)"
    return None


def load_checkpoint(path: str | Path, verify: bool = True) -> dict:
    """Load a checkpoint safely (``weights_only=True``), after checking its sha256.

    A missing .sha256 sidecar only warns (a checkpoint copied on its own is still usable); a
    mismatch or an unreadable file raises :class:`WavegenError`.
    """
    path = Path(path)
    if not path.is_file():
        raise WavegenError(f"{path}: no such checkpoint")
    kind = _foreign_kind(path)
    if kind is not None:
        raise WavegenError(
            f"{path}: {kind}, not a wavegen checkpoint; expected a run dir, an exported model folder "
            "or a checkpoint (.pt)"
        )
    if verify:
        problem = verify_checkpoint(path)
        if problem and not _sidecar(path).is_file():
            log.warning("%s: %s; loading it unverified", path, problem)
        elif problem:
            raise WavegenError(f"{path}: corrupt checkpoint: {problem}")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning: the error below says it
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, ...: all mean "not our checkpoint"
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if msg.startswith("Weights only load failed"):  # torch's advice to turn weights_only off: never
            msg = "not a file of plain tensors and values; wavegen never unpickles other objects"
        raise WavegenError(f"{path}: not a readable wavegen checkpoint ({msg})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise WavegenError(f"{path}: not a wavegen checkpoint (expected format {FORMAT!r})")
    return ckpt


# Files users give by mistake where a model is expected, by their first bytes.
_FOREIGN = (
    (b"RIFF", "a WAV audio file"),
    (b"fLaC", "a FLAC audio file"),
    (b"OggS", "an Ogg audio file"),
    (b"ID3", "an MP3 audio file"),
    (b"\x93NUMPY", "a NumPy array (.npy)"),
    (b"\x89WGC", "a wavegen compressed file (.wgc)"),
)


def _foreign_kind(path: Path) -> str | None:
    """What ``path`` is, if its first bytes say it is a known file that is not a checkpoint."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None  # torch.load's own error below says why it cannot be read
    if not head:
        return "an empty file"
    kind = next((kind for magic, kind in _FOREIGN if head.startswith(magic)), None)
    if kind is None and _is_text(head):  # a recipe YAML, a .sha256 sidecar, a JSON config, ...
        return "a text file"
    return kind


def _is_text(head: bytes) -> bool:
    """Whether the first bytes of a file are printable UTF-8 text (a torch file starts with a zip
    header or a pickle opcode, never with text)."""
    for cut in range(4):  # the 512-byte read may end inside a multi-byte character
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return bool(text) and all(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return False


def resolve_checkpoint(source: str | Path) -> Path:
    """A checkpoint file, or the newest valid checkpoint of a run dir."""
    source = Path(source)
    if source.is_file():
        return source
    if source.is_dir():
        found = latest_checkpoint(source)
        if found is None:
            raise WavegenError(f"{source}: no valid checkpoint in {source / 'checkpoints'}")
        return found
    raise WavegenError(f"{source}: no such checkpoint or run directory")


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the step_*.pt files in RUN_DIR/checkpoints, oldest first (unverified)."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _STEP_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest step checkpoint whose checksum verifies; corrupt newer ones are warned about."""
    for _, path in reversed(list_checkpoints(run_dir)):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        log.warning("skipping checkpoint %s: %s; falling back to the previous one", path, problem)
    return None


def prune_checkpoints(run_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` step checkpoints (best.pt is separate); -> removed."""
    removed = []
    for _, path in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        path.unlink(missing_ok=True)
        _sidecar(path).unlink(missing_ok=True)
        removed.append(path)
    return removed


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Remove ``.*.tmp`` files left by a process killed while writing a checkpoint."""
    folder = checkpoint_dir(run_dir)
    stale = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def model_from_checkpoint(ckpt: dict, use_ema: bool = True, where: str | Path = "checkpoint") -> WaveNet:
    """Rebuild the WaveNet of a loaded checkpoint, in eval mode, on the CPU.

    Uses the EMA weights when ``use_ema`` and the checkpoint has them, else the raw weights. A
    stored recipe whose model section is invalid or no longer fits the weights (edited by hand)
    is a one-line WavegenError naming ``where``.
    """
    try:
        recipe = ckpt["recipe"]
        weights = ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]
        section = recipe["model"]
        preset = (ckpt.get("preset") or {}).get("name") or recipe.get("audio", {}).get("preset", "tacotron2")
    except (KeyError, TypeError, AttributeError):
        raise WavegenError(f"{where}: checkpoint lacks recipe.model or model weights") from None
    try:
        model = WaveNet(checked_model_config(section, preset, "recipe.model"))
        model.load_weights(weights)
    except WavegenError as err:
        raise WavegenError(f"{where}: {err} (the checkpoint's stored recipe)") from None
    return model.eval()

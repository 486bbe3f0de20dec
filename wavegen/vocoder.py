"""The vocoder backend TTS projects call: a mel spectrogram in, audio out, no surprises.

    vocoder = wavegen.load_vocoder("exp/ljspeech/export", device="cpu")
    wav = vocoder(mel)                 # mel: (n_mels, T) or (B, n_mels, T), torch or numpy
    vocoder.sample_rate, vocoder.hop_length, vocoder.mel_preset, vocoder.speakers
    mel = vocoder.mel(wav)             # the matching front-end
    for chunk in vocoder.stream(mel):  # audio as it is produced
        ...

Mels are checked before any work: bin count, orientation, and whether their values look like
the model's preset (natural log vs log10, normalised, dB or linear) — the most common failure of
vocoders in TTS pipelines — with an error that says what was expected and what was seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import WavegenError
from .features import MelPreset, mel_spectrogram

# Typical value statistics (mean, std over all bins) of speech mels, measured on LJSpeech.
_SCALES = {
    "natural-log": (-5.2, 2.05),
    "log10": (-2.25, 0.9),
    "normalised": (0.0, 1.0),
}


class Vocoder:
    """A WaveNet vocoder bound to its mel preset, speakers and device."""

    def __init__(
        self,
        model,
        preset: MelPreset,
        speakers: Sequence[str] = (),
        mel_normalize=False,
        device: str | torch.device = "cpu",
    ):
        self.model = model.to(device).eval()
        self.preset = preset
        # A one-speaker corpus (LJSpeech) names its speaker although the model has no speaker table.
        self.speakers = list(speakers) if model.config.n_speakers != 0 else []
        self.mel_normalize = mel_normalize
        self.device = torch.device(device)

    @property
    def sample_rate(self) -> int:
        return self.preset.sample_rate

    @property
    def hop_length(self) -> int:
        return self.model.hop_length

    @property
    def mel_preset(self) -> str:
        return self.preset.name

    @property
    def n_mels(self) -> int:
        return self.model.config.cin_channels

    def __repr__(self) -> str:
        return (
            f"Vocoder(preset={self.mel_preset!r}, sample_rate={self.sample_rate}, "
            f"hop_length={self.hop_length}, speakers={len(self.speakers)}, device={self.device})"
        )

    # ---- front-end ---------------------------------------------------------------------------
    def mel(self, wav, sample_rate: int | None = None) -> torch.Tensor:
        """(T,) waveform (at ``sample_rate``, resampled if it differs) -> (n_mels, 1 + T // hop)."""
        if isinstance(wav, torch.Tensor):
            wav = wav.detach().cpu().numpy()
        wav = np.asarray(wav, dtype=np.float32)
        if sample_rate is not None and sample_rate != self.sample_rate:
            from .audio import resample

            wav = resample(wav, sample_rate, self.sample_rate)
        return torch.from_numpy(mel_spectrogram(wav, self.preset))

    # ---- input checks ------------------------------------------------------------------------
    def prepare_mel(self, mel, check: bool = True) -> torch.Tensor:
        """Torch or numpy mel, (n_mels, T), (T, n_mels) when unambiguous, or (B, n_mels, T) ->
        float32 (B, n_mels, T) on the vocoder's device, after the preset checks."""
        if isinstance(mel, np.ndarray):
            mel = torch.from_numpy(np.ascontiguousarray(mel))
        if not isinstance(mel, torch.Tensor):
            raise WavegenError(f"mel: expected a torch tensor or numpy array, got {type(mel).__name__}")
        mel = mel.detach().float()
        n = self.n_mels
        if mel.dim() == 2:
            if mel.shape[0] != n and mel.shape[1] == n:
                mel = mel.T  # (T, n_mels) is unambiguous when T != n_mels
            mel = mel[None]
        if mel.dim() != 3 or mel.shape[1] != n:
            raise WavegenError(
                f"mel: expected {n} mel bins ({self.preset.name} preset) as (n_mels, T), (T, n_mels) "
                f"or (batch, n_mels, T); got shape {tuple(mel.shape)}"
            )
        if mel.shape[-1] < 1:
            raise WavegenError("mel: has no frames")
        if check:
            self.check_values(mel)
        return mel.to(self.device)

    def check_values(self, mel: torch.Tensor) -> None:
        """Refuse mels whose values do not look like this model's preset."""
        if not torch.isfinite(mel).all():
            raise WavegenError("mel: contains NaN or infinite values")
        expected = "natural-log" if self.preset.log_base == "e" else "log10"
        want = (
            f"expected {self.n_mels} {expected} mel bins ({self.preset.name} preset, "
            f"floor {self.preset.floor:g})"
        )
        mean, std = mel.mean().item(), mel.std().item() if mel.numel() > 1 else 0.0
        lo, hi = mel.min().item(), mel.max().item()
        floor = math.log(self.preset.floor) if self.preset.log_base == "e" else math.log10(self.preset.floor)
        seen = f"(min {lo:.2f}, max {hi:.2f}, mean {mean:.2f}, std {std:.2f})"
        if lo >= 0:
            raise WavegenError(f"mel: {want}; the values are all ≥ 0 and look linear, not log {seen}")
        if mean < -15 or lo < -30:
            raise WavegenError(f"mel: {want}; the values look like dB, not a log mel {seen}")
        if std > 0:
            score = {
                name: ((mean - m) / 1.5) ** 2 + (math.log(std / s) / 0.35) ** 2
                for name, (m, s) in _SCALES.items()
            }
            looks = min(score, key=score.get)
            if looks != expected:
                hint = (
                    " (mel_normalize models take raw mels and normalise inside)"
                    if looks == "normalised"
                    else ""
                )
                raise WavegenError(f"mel: {want}; the values look {looks} {seen}{hint}")
        if lo < floor - 0.05:
            raise WavegenError(
                f"mel: {want}; values go below the preset's floor {floor:.2f}: another log base, "
                f"floor or scale {seen}"
            )

    def speaker_ids(self, speaker, batch: int) -> torch.Tensor | None:
        """Speaker name(s) or index(es) -> (B,) int64, checked against the model's speakers."""
        if self.model.config.n_speakers == 0:
            if speaker is not None:
                raise WavegenError("this model has no speaker conditioning; do not pass a speaker")
            return None
        if speaker is None:
            raise WavegenError(f"this model needs a speaker; valid speakers: {', '.join(self.speakers)}")
        items = list(speaker) if isinstance(speaker, (list, tuple)) else [speaker] * batch
        if len(items) != batch:
            raise WavegenError(f"got {len(items)} speakers for a batch of {batch}")
        ids = []
        for s in items:
            if isinstance(s, str) and s in self.speakers:
                ids.append(self.speakers.index(s))
            elif isinstance(s, (int, np.integer)) and 0 <= int(s) < self.model.config.n_speakers:
                ids.append(int(s))
            else:
                raise WavegenError(f"unknown speaker {s!r}; valid speakers: {', '.join(self.speakers)}")
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    # ---- synthesis ---------------------------------------------------------------------------
    @torch.inference_mode()
    def __call__(
        self,
        mel,
        speaker=None,
        temperature: float = 1.0,
        seed: int | None = None,
        check: bool = True,
        **kwargs,
    ) -> torch.Tensor:
        """mel (n_mels, T) -> (T·hop,) float waveform; (B, n_mels, T) -> (B, T·hop)."""
        batched = getattr(mel, "ndim", 0) == 3
        m = self.prepare_mel(mel, check)
        spk = self.speaker_ids(speaker, m.shape[0])
        from .generation import generate

        wav = generate(self.model, m, speaker=spk, temperature=temperature, seed=seed, **kwargs)
        return wav if batched else wav[0]

    @torch.inference_mode()
    def batch(
        self,
        mels: Sequence,
        speakers=None,
        temperature: float = 1.0,
        seed: int | None = None,
        check: bool = True,
        **kwargs,
    ) -> list[torch.Tensor]:
        """Vocode utterances of different lengths in one batch -> list of (T_i·hop,) waveforms."""
        prepared = [self.prepare_mel(m, check)[0] for m in mels]
        lengths = torch.tensor([m.shape[-1] for m in prepared])
        padded = torch.zeros(len(prepared), self.n_mels, int(lengths.max()), device=self.device)
        for i, m in enumerate(prepared):  # the generator edge-pads each row at its own length
            padded[i, :, : m.shape[-1]] = m
        spk = self.speaker_ids(speakers, len(prepared))
        from .generation import generate

        wav = generate(
            self.model, padded, speaker=spk, temperature=temperature, seed=seed, lengths=lengths, **kwargs
        )
        return [wav[i, : int(n) * self.hop_length] for i, n in enumerate(lengths)]

    @torch.inference_mode()
    def stream(
        self,
        mel,
        speaker=None,
        temperature: float = 1.0,
        seed: int | None = None,
        check: bool = True,
        **kwargs,
    ) -> Iterator[torch.Tensor]:
        """Yield audio chunks, (n,) for a 2-D mel or (B, n) for a batch, as they are produced."""
        batched = getattr(mel, "ndim", 0) == 3
        m = self.prepare_mel(mel, check)
        spk = self.speaker_ids(speaker, m.shape[0])
        from .generation import stream

        for chunk in stream(self.model, m, speaker=spk, temperature=temperature, seed=seed, **kwargs):
            yield chunk if batched else chunk[0]


def load_vocoder(path: str | Path, device: str | torch.device = "cpu") -> Vocoder:
    """Load a vocoder from an exported folder (model.safetensors + config.json), a training run
    dir (its newest valid checkpoint, EMA weights) or a checkpoint file. Nothing is unpickled."""
    from .export import CONFIG, load_exported, resolve_checkpoint

    path = Path(path)
    if path.is_file() and path.suffix == ".safetensors":
        path = path.parent
    if path.is_dir() and (path / CONFIG).is_file():
        model, config = load_exported(path, device)
        return Vocoder(
            model, config["preset"], config.get("speakers", []), config.get("mel_normalize", False), device
        )
    from .training.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(resolve_checkpoint(path))
    preset = ckpt.get("preset")
    if not preset:
        raise WavegenError(f"{path}: checkpoint has no mel preset")
    model = model_from_checkpoint(ckpt, use_ema=True)
    mel_normalize = bool(ckpt["recipe"].get("audio", {}).get("mel_normalize", False))
    return Vocoder(model, MelPreset(**preset), ckpt.get("speakers") or [], mel_normalize, device)

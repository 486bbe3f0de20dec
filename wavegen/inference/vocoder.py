"""The vocoder backend TTS projects call: a mel spectrogram in, audio out, no surprises.

    vocoder = wavegen.load_vocoder("exp/ljspeech/export", device="cpu")
    wav = vocoder(mel)                 # mel: (n_mels, T) or (B, n_mels, T), torch or numpy
    vocoder.sample_rate, vocoder.hop_length, vocoder.mel_preset, vocoder.speakers
    mel = vocoder.mel(wav)             # the matching front-end
    for chunk in vocoder.stream(mel):  # audio as it is produced
        ...

Mels are checked before any work: dtype, bin count, orientation, and whether their values look
like the model's preset (natural log vs log10, normalised, dB or linear) — the most common failure
of vocoders in TTS pipelines — with an error that says what was expected and what was seen.
Silence (every bin at the preset's floor) and quiet speech pass: see :meth:`Vocoder.check_values`.

Speakers follow the model's conditioning (``model.config.n_speakers``), not the speaker list it
carries: a single-speaker or speaker-independent model (n_speakers 0) still lists the speakers it
was trained on (LJSpeech: ['LJ']), takes no speaker, and ignores one of those names if given.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ..artifacts.loader import load_model
from ..core.device import resolve_device
from ..core.errors import WavegenError
from ..core.features import MelPreset, mel_spectrogram
from ..core.mel_scale import judge_scale
from ..generation.backends import backend_for
from ..generation.kernel_bf16 import fits


class Vocoder:
    """A WaveNet vocoder bound to its mel preset, speakers and device."""

    def __init__(
        self,
        model,
        preset: MelPreset,
        speakers: Sequence[str] = (),
        device: str | torch.device = "cpu",
        precision: str = "auto",
    ):
        device = resolve_device(device)  # a one-line error for tpu, cuda without a GPU, ...
        self.model = model.to(device).eval()
        self.preset = preset
        # A one-speaker corpus (LJSpeech) names its speaker although the model has no speaker table:
        # kept, so the name is accepted (and ignored); see speaker_ids.
        self.speakers = list(speakers)
        self.device = device
        # Build or load the sampler kernel now, so the first request does not pay for it.
        # precision "auto" is bf16 (the cpp-bf16 kernel) where the CPU has a vector path for it.
        if precision == "auto" and not fits(self.model.config):
            precision = "fp32"  # an odd shape the bf16 packing does not take
        self.backend = backend_for(self.device, precision)
        self.precision = "bf16" if self.backend == "cpp-bf16" else "fp32"

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
        """Mel bins the model is conditioned on; 0 for an unconditional model."""
        return self.model.config.cin_channels

    @property
    def speaker_conditioned(self) -> bool:
        """Whether the model takes a speaker (a speaker table), whatever :attr:`speakers` lists."""
        return self.model.config.n_speakers > 0

    def require_mel_conditioning(self) -> None:
        """Refuse to vocode with an unconditional model (model.cin_channels 0): no mel goes in."""
        if self.n_mels == 0:
            raise WavegenError(
                "this model is unconditional (model.cin_channels 0): it takes no mel spectrogram, "
                "so it cannot vocode one (wavegen.generate(model, num_samples=N) samples from it)"
            )

    def __repr__(self) -> str:
        return (
            f"Vocoder(preset={self.mel_preset!r}, sample_rate={self.sample_rate}, "
            f"hop_length={self.hop_length}, speakers={len(self.speakers)}, device={self.device}, "
            f"backend={self.backend!r}, precision={self.precision!r})"
        )

    # ---- front-end ---------------------------------------------------------------------------
    def mel(self, wav, sample_rate: int | None = None) -> torch.Tensor:
        """(T,) waveform (at ``sample_rate``, resampled if it differs) -> (n_mels, 1 + T // hop)."""
        if isinstance(wav, torch.Tensor):
            wav = wav.detach().cpu().numpy()
        wav = np.asarray(wav)
        if wav.dtype.kind != "f":
            hint = " (divide 16-bit PCM by 32768)" if wav.dtype.kind in "iu" else ""
            raise WavegenError(f"audio: expected float samples in [-1, 1], got dtype {wav.dtype}{hint}")
        if not np.isfinite(wav).all():
            raise WavegenError("audio: contains NaN or infinite samples")
        wav = wav.astype(np.float32, copy=False)
        if sample_rate is not None and sample_rate != self.sample_rate:
            from ..core.audio import resample

            wav = resample(wav, sample_rate, self.sample_rate)
        return torch.from_numpy(mel_spectrogram(wav, self.preset))

    # ---- input checks ------------------------------------------------------------------------
    def prepare_mel(self, mel, check: bool = True) -> torch.Tensor:
        """Torch or numpy mel, (n_mels, T), (T, n_mels) when unambiguous, or (B, n_mels, T) ->
        float32 (B, n_mels, T) on the vocoder's device, after the preset checks."""
        self.require_mel_conditioning()
        if isinstance(mel, np.ndarray):
            if mel.dtype.kind not in "fc":  # torch cannot hold object or string arrays
                raise WavegenError(f"mel: expected real floating-point values, got dtype {mel.dtype}")
            mel = torch.from_numpy(np.ascontiguousarray(mel))
        if not isinstance(mel, torch.Tensor):
            raise WavegenError(f"mel: expected a torch tensor or numpy array, got {type(mel).__name__}")
        if not mel.is_floating_point():  # complex, integer or bool: not a log-mel
            raise WavegenError(f"mel: expected real floating-point values, got dtype {mel.dtype}")
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
        """Refuse mels whose values do not look like this model's preset.

        Values at the preset's floor are silence and carry no sign of the scale, so the scale
        (natural log, log10 or normalised) is judged from the spread of the loudest 20% of the
        values and the mean, and only when at least that fraction is above the floor. A quieter
        level only lowers a log mel's values, so a mean below the preset's typical one costs
        little and one above it (or a spread off by the log base) a lot: quiet speech passes at
        any level, and silence (every bin at the floor) passes as it is.
        """
        if not torch.isfinite(mel).all():
            raise WavegenError("mel: contains NaN or infinite values")
        expected = "natural-log" if self.preset.log_base == "e" else "log10"
        want = (
            f"expected {self.n_mels} {expected} mel bins ({self.preset.name} preset, "
            f"floor {self.preset.floor:g})"
        )
        looks, seen = judge_scale(mel, self.preset)
        if looks == "linear":
            raise WavegenError(f"mel: {want}; the values are all ≥ 0 and look linear, not log {seen}")
        if looks == "dB":
            raise WavegenError(f"mel: {want}; the values look like dB, not a log mel {seen}")
        if looks is not None and looks != expected:
            hint = ""
            if looks == "normalised":
                hint = " (mel_normalize models take raw mels and normalise inside)"
            raise WavegenError(f"mel: {want}; the values look {looks} {seen}{hint}")
        floor = math.log(self.preset.floor) if self.preset.log_base == "e" else math.log10(self.preset.floor)
        if mel.min().item() < floor - 0.05:
            raise WavegenError(
                f"mel: {want}; values go below the preset's floor {floor:.2f}: another log base, "
                f"floor or scale {seen}"
            )

    def speaker_ids(self, speaker, batch: int) -> torch.Tensor | None:
        """Speaker name(s) or index(es) -> (B,) int64, checked against the model's speakers.

        A model without speaker conditioning returns None; it accepts no speaker, or one of the
        speakers it was trained on (ignored), and refuses any other.
        """
        if not self.speaker_conditioned:
            items = speaker if isinstance(speaker, (list, tuple)) else [speaker]
            strangers = [s for s in items if s is not None and s not in self.speakers]
            if strangers:
                trained = f" (it was trained on {', '.join(self.speakers)})" if self.speakers else ""
                raise WavegenError(
                    f"this model has no speaker conditioning{trained}; pass no speaker, not {strangers[0]!r}"
                )
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
        from ..generation import check_temperature, generate

        temperature = check_temperature(temperature)
        batched = getattr(mel, "ndim", 0) == 3
        m = self.prepare_mel(mel, check)
        spk = self.speaker_ids(speaker, m.shape[0])
        kwargs.setdefault("precision", self.precision)
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
        """Vocode utterances of different lengths in one batch -> list of (T_i·hop,) waveforms.

        Each of ``mels`` is one utterance, (n_mels, T_i) or (T_i, n_mels); an empty list gives [].
        """
        from ..generation import check_temperature, generate

        temperature = check_temperature(temperature)
        if len(mels) == 0:
            return []
        prepared = []
        for i, m in enumerate(mels):
            m = self.prepare_mel(m, check)
            if m.shape[0] != 1:
                shape = tuple(m.shape)
                raise WavegenError(f"mels[{i}]: expected one utterance (n_mels, T), got shape {shape}")
            prepared.append(m[0])
        lengths = torch.tensor([m.shape[-1] for m in prepared])
        padded = torch.zeros(len(prepared), self.n_mels, int(lengths.max()), device=self.device)
        for i, m in enumerate(prepared):  # the generator edge-pads each row at its own length
            padded[i, :, : m.shape[-1]] = m
        spk = self.speaker_ids(speakers, len(prepared))
        kwargs.setdefault("precision", self.precision)
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
        from ..generation import check_temperature, stream

        temperature = check_temperature(temperature)
        batched = getattr(mel, "ndim", 0) == 3
        m = self.prepare_mel(mel, check)
        spk = self.speaker_ids(speaker, m.shape[0])
        kwargs.setdefault("precision", self.precision)
        for chunk in stream(self.model, m, speaker=spk, temperature=temperature, seed=seed, **kwargs):
            yield chunk if batched else chunk[0]


def load_vocoder(path: str | Path, device: str | torch.device = "cpu", precision: str = "auto") -> Vocoder:
    """Load a vocoder from an exported folder (model.safetensors + config.json), a training run
    dir (its newest valid checkpoint, EMA weights) or a checkpoint file. Nothing is unpickled;
    see :func:`wavegen.artifacts.loader.load_model`. ``precision``: the CPU kernel's arithmetic,
    "auto", "fp32" or "bf16" (see :class:`Vocoder`)."""
    device = resolve_device(device)  # before any loading
    loaded = load_model(path, device)
    return Vocoder(loaded.model, loaded.preset, loaded.speakers, device, precision)

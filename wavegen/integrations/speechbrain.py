"""SpeechBrain- and NeMo-style vocoder interfaces over a wavegen vocoder.

SpeechBrain's vocoders (``speechbrain.inference.vocoders.HIFIGAN``) take the mels its TTS
models make (``speechbrain.lobes.models.Tacotron2`` / FastSpeech2 recipes: amplitude mel,
slaney, ``dynamic_range_compression`` = ln(max(mel, 1e-5)), 22050 Hz, n_fft 1024, hop 256,
80 mels 0-8000 Hz: the tacotron2 preset); NeMo's (``convert_spectrogram_to_audio``) take its
``FilterbankFeatures``: ln(mel + guard), with ``log_zero_guard_type`` "add" (value 2**-24 by
default) or "clamp". Both are natural-log mels, ``(B, n_mels, T)``.

    hifi = SpeechBrainVocoder(wavegen.load_vocoder("exp/ljspeech/export"))
    waveforms = hifi.decode_batch(mel_output)            # (B, 1, T·hop)
    nemo = NeMoVocoder(wavegen.load_vocoder(...))
    audio = nemo.convert_spectrogram_to_audio(spec=spec)  # (B, T·hop)
"""

from __future__ import annotations

import torch

from ..core.errors import WavegenError
from ..inference.vocoder import Vocoder
from .frontend import batch_of, check_lengths, pad_batch, vocode_natural_log


class SpeechBrainVocoder:
    """``decode_batch(mels (B, n_mels, T), mel_lens) -> (B, 1, T·hop)`` and ``decode_spectrogram``."""

    def __init__(self, vocoder: Vocoder, **vocode_options):
        vocoder.require_mel_conditioning()
        if vocoder.preset.log_base != "e":
            raise WavegenError(
                f"SpeechBrain mels are natural-log; the vocoder's {vocoder.preset.name} preset is log10 "
                "(use a tacotron2-preset vocoder)"
            )
        self.vocoder, self.options = vocoder, vocode_options

    @torch.inference_mode()
    def decode_batch(self, spectrogram, mel_lens=None, hop_len=None) -> torch.Tensor:
        """(B, n_mels, T) -> (B, 1, T·hop); with ``mel_lens`` each row is cut to its own length
        (zeros after it), as SpeechBrain's HIFIGAN masks them. ``hop_len``: must be the vocoder's."""
        if hop_len is not None and hop_len != self.vocoder.hop_length:
            raise WavegenError(f"hop_len is {hop_len}, the vocoder's hop is {self.vocoder.hop_length}")
        where = "SpeechBrain spectrogram"
        mel = batch_of(spectrogram, self.vocoder.n_mels, where)
        if mel_lens is not None:
            mel_lens = check_lengths(mel_lens, mel.shape[0], mel.shape[2], where, "mel_lens")
        return pad_batch(vocode_natural_log(self.vocoder, mel, lengths=mel_lens, **self.options))

    def decode_spectrogram(self, spectrogram) -> torch.Tensor:
        """One (n_mels, T) mel -> (1, T·hop)."""
        mel = batch_of(spectrogram, self.vocoder.n_mels, "SpeechBrain spectrogram")
        if mel.shape[0] != 1:
            raise WavegenError(f"decode_spectrogram takes one (n_mels, T) mel, got shape {tuple(mel.shape)}")
        return self.decode_batch(mel)[0]


class NeMoVocoder:
    """``convert_spectrogram_to_audio(spec (B, n_mels, T)) -> (B, T·hop)``, as NeMo's vocoders."""

    def __init__(
        self,
        vocoder: Vocoder,
        log_zero_guard_type: str = "add",
        log_zero_guard_value: float = 2**-24,
        **vocode_options,
    ):
        vocoder.require_mel_conditioning()
        if log_zero_guard_type not in ("add", "clamp"):
            raise WavegenError(f"log_zero_guard_type must be add or clamp, got {log_zero_guard_type!r}")
        if vocoder.preset.log_base != "e":
            raise WavegenError(
                f"NeMo mels are natural-log; the vocoder's {vocoder.preset.name} preset is log10"
            )
        self.vocoder, self.options = vocoder, vocode_options
        self.guard_type, self.guard = log_zero_guard_type, log_zero_guard_value

    def natural_log(self, spec: torch.Tensor) -> torch.Tensor:
        """NeMo's ln(mel + guard) (or ln(max(mel, guard))) -> ln(mel); the guard is removed."""
        if self.guard_type == "clamp":
            return spec
        magnitude = (spec.double().exp() - self.guard).clamp_min(self.vocoder.preset.floor)
        return magnitude.log().float()

    @torch.inference_mode()
    def convert_spectrogram_to_audio(self, spec, **_) -> torch.Tensor:
        mel = batch_of(spec, self.vocoder.n_mels, "NeMo spec")
        return pad_batch(vocode_natural_log(self.vocoder, self.natural_log(mel), **self.options))[:, 0]

"""Coqui TTS: a wavegen vocoder fed Coqui's normalised dB mels.

    from TTS.utils.synthesizer import Synthesizer
    synth = Synthesizer(tts_checkpoint=..., tts_config_path=...)   # no vocoder of Coqui's
    synth.vocoder_model = CoquiVocoder(wavegen.load_vocoder("exp/x/export"), synth.tts_model.ap)
    synth.vocoder_ap = synth.tts_model.ap                          # the same normalisation
    synth.vocoder_config = synth.tts_config
    wav = synth.tts("Hello")

Coqui's synthesizer denormalises the TTS output with the model's AudioProcessor, normalises it
again with the vocoder's (here the same one) and calls ``vocoder_model.inference(mel)`` with
``(1, n_mels, T)``, expecting ``(1, 1, T·hop)``. The AudioProcessor's mel is
``spec_gain·log_func(max(1e-5, mel)) − ref_level_db``, normalised to [−max_norm, max_norm]
(symmetric_norm) or [0, max_norm]; wavegen.data.tts_mels.coqui_db_to_natural_log undoes it. Its
sample_rate, fft_size, hop_length, win_length, num_mels, mel_fmin and mel_fmax are checked
against the vocoder's preset; mean-variance stats (stats_path) and pre-emphasis are refused.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.errors import WavegenError
from ..data.tts_mels import coqui_db_to_natural_log, coqui_settings
from ..inference.vocoder import Vocoder
from .frontend import batch_of, check_settings, pad_batch, vocode_natural_log

_NAMES = {
    "sample_rate": "sample_rate",
    "n_fft": "fft_size",
    "hop_length": "hop_length",
    "win_length": "win_length",
    "n_mels": "num_mels",
    "fmin": "mel_fmin",
    "fmax": "mel_fmax",
}


class CoquiVocoder(torch.nn.Module):
    """Coqui-normalised ``(B, n_mels, T)`` mel -> ``(B, 1, T·hop)``, as Coqui calls its vocoders."""

    def __init__(self, vocoder: Vocoder, audio, **vocode_options):
        """``audio``: Coqui's audio config (``config.audio``, a dict from config.json) or its
        ``AudioProcessor`` (``tts_model.ap``)."""
        super().__init__()
        vocoder.require_mel_conditioning()
        get = audio.get if isinstance(audio, dict) else lambda key, default=None: getattr(audio, key, default)
        if get("stats_path"):
            raise WavegenError(
                "Coqui audio.stats_path: mean-variance normalised mels are not supported; unset it"
            )
        if get("preemphasis", 0.0):
            raise WavegenError(
                f"Coqui audio.preemphasis is {get('preemphasis')}, the vocoder's mels have none (0)"
            )
        settings = {key: get(name) for key, name in _NAMES.items()}
        settings["win_length"] = settings["win_length"] or settings["n_fft"]
        check_settings(vocoder, settings, "Coqui audio config", _NAMES)
        self.vocoder, self.settings, self.options = vocoder, coqui_settings(audio), vocode_options
        # A submodule, so that Coqui's `next(vocoder_model.parameters()).device` finds the device.
        self.wavenet = vocoder.model

    def natural_log(self, mel) -> torch.Tensor:
        """Coqui-normalised mel (any shape) -> natural-log mel."""
        values = mel.detach().cpu().double().numpy() if isinstance(mel, torch.Tensor) else np.asarray(mel)
        return torch.from_numpy(coqui_db_to_natural_log(values, self.settings)).float()

    @torch.inference_mode()
    def inference(self, mel) -> torch.Tensor:
        mel = batch_of(mel, self.vocoder.n_mels, "Coqui vocoder input")
        return pad_batch(vocode_natural_log(self.vocoder, self.natural_log(mel), **self.options))

    def forward(self, mel) -> torch.Tensor:
        return self.inference(mel)

"""ESPnet2: a wavegen vocoder where ``Text2Speech`` keeps its vocoder.

    from espnet2.bin.tts_inference import Text2Speech
    tts = Text2Speech.from_pretrained(...)                  # an ESPnet2 TTS model
    tts.vocoder = ESPnetVocoder.from_model(wavegen.load_vocoder("exp/x/export"), tts.model)
    wav = tts("Hello")["wav"]                               # vocoded by wavegen

Text2Speech calls ``vocoder(feat_gen)`` with the denormalised (T, n_mels) log-mel of the model's
feature extractor (``LogMelFbank``: amplitude mel, clamped at 1e-10, log of base ``log_base``,
10 by default; ``None`` = natural log) and takes the waveform it returns. The extractor's fs,
n_fft, hop_length, win_length, n_mels, fmin and fmax are checked against the vocoder's preset.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import torch

from ..core.errors import WavegenError
from ..inference.vocoder import Vocoder
from .frontend import as_mels, check_settings, vocode_natural_log

_NAMES = {  # preset field -> ESPnet's feats_extract_conf key
    "sample_rate": "fs",
    "n_fft": "n_fft",
    "hop_length": "hop_length",
    "win_length": "win_length",
    "n_mels": "n_mels",
    "fmin": "fmin",
    "fmax": "fmax",
}


class ESPnetVocoder:
    """``(T, n_mels)`` (or ``(B, T, n_mels)``) ESPnet log-mel -> waveform ``(T·hop,)`` (``(B, T·hop)``)."""

    def __init__(self, vocoder: Vocoder, log_base: float | None = 10.0, **vocode_options):
        vocoder.require_mel_conditioning()
        number = isinstance(log_base, numbers.Real) and not isinstance(log_base, bool)
        usable = number and math.isfinite(log_base) and log_base > 0 and log_base != 1
        if log_base is not None and not usable:
            raise WavegenError(f"ESPnet log_base must be positive and not 1, got {log_base}")
        self.vocoder, self.log_base, self.options = vocoder, log_base, vocode_options

    @classmethod
    def from_config(cls, vocoder: Vocoder, feats_extract_conf: dict, **vocode_options) -> ESPnetVocoder:
        """From an ESPnet model's ``feats_extract_conf`` (its config.yaml); LogMelFbank's defaults
        (fs 16000, n_fft 1024, hop 256, win_length = n_fft, fmin 80, fmax 7600, log_base 10)
        for the keys it leaves out."""
        if feats_extract_conf is not None and not isinstance(feats_extract_conf, Mapping):
            raise WavegenError(
                "ESPnet feats_extract_conf: expected a mapping of LogMelFbank settings, "
                f"got {type(feats_extract_conf).__name__}"
            )
        conf = {"fs": 16000, "n_fft": 1024, "hop_length": 256, "n_mels": 80, "fmin": 80, "fmax": 7600}
        conf.update(feats_extract_conf or {})
        conf["win_length"] = conf.get("win_length") or conf["n_fft"]
        settings = {key: conf.get(name) for key, name in _NAMES.items()}
        if settings["fmax"] is None:
            settings["fmax"] = settings["sample_rate"] / 2
        check_settings(vocoder, settings, "ESPnet feats_extract_conf", _NAMES)
        return cls(vocoder, conf.get("log_base", 10.0), **vocode_options)

    @classmethod
    def from_model(cls, vocoder: Vocoder, model, **vocode_options) -> ESPnetVocoder:
        """From an ``ESPnetTTSModel`` (``Text2Speech.model``) or its ``LogMelFbank``."""
        fbank = getattr(model, "feats_extract", model)
        missing = [
            name
            for name in ("fs", "n_fft", "hop_length", "n_mels", "fmin", "fmax")
            if not hasattr(fbank, name)
        ]
        if fbank is None or missing or not hasattr(fbank, "logmel"):
            raise WavegenError(
                "ESPnet model: expected a LogMelFbank feature extractor (feats_extract: fbank)"
            )
        conf = {name: getattr(fbank, name) for name in ("fs", "n_fft", "hop_length", "win_length", "n_mels")}
        conf.update(fmin=fbank.fmin, fmax=fbank.fmax, log_base=fbank.logmel.log_base)
        return cls.from_config(vocoder, conf, **vocode_options)

    def natural_log(self, feats: torch.Tensor) -> torch.Tensor:
        """ESPnet log-mel (any shape) -> natural-log mel."""
        return feats if self.log_base is None else feats * math.log(self.log_base)

    @torch.inference_mode()
    def __call__(self, feats) -> torch.Tensor:
        feats = as_mels(feats, "ESPnet feats")
        batched = feats.dim() == 3
        feats = feats if batched else feats[None]  # (B, T, n_mels)
        if feats.dim() < 3 or feats.shape[-1] != self.vocoder.n_mels:
            raise WavegenError(
                f"ESPnet feats: expected (T, {self.vocoder.n_mels}) as Text2Speech passes them, got shape "
                f"{tuple(feats.shape if batched else feats.shape[1:])}"
            )
        if feats.shape[0] == 0:
            raise WavegenError("ESPnet feats: an empty batch (no mels)")
        waves = vocode_natural_log(self.vocoder, self.natural_log(feats).transpose(1, 2), **self.options)
        return torch.stack(waves) if batched else waves[0]

    @property
    def fs(self) -> int:
        return self.vocoder.sample_rate

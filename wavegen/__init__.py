"""wavegen: WaveNet neural vocoder toolkit.

Public API::

    vocoder = wavegen.load_vocoder(path)        # mel in, audio out (see wavegen.inference.vocoder)
    wavegen.score(vocoder, wav).bits_per_sample  # how likely audio is under the model
    from wavegen import WaveNet, ModelConfig, mulaw_encode, mulaw_decode, mel_spectrogram
"""

from .core.audio import read_audio, write_audio
from .core.config import AudioConfig, DataConfig, ModelConfig, Recipe, TrainConfig, load_recipe
from .core.errors import WavegenError
from .core.features import PRESETS, MelPreset, get_preset, mel_spectrogram
from .core.mulaw import mulaw_decode, mulaw_encode
from .generation import generate, stream
from .inference.score import Score, score
from .inference.vocoder import Vocoder, load_vocoder
from .model import WaveNet

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "AudioConfig",
    "DataConfig",
    "MelPreset",
    "ModelConfig",
    "Recipe",
    "Score",
    "TrainConfig",
    "Vocoder",
    "WaveNet",
    "WavegenError",
    "generate",
    "get_preset",
    "load_recipe",
    "load_vocoder",
    "mel_spectrogram",
    "mulaw_decode",
    "mulaw_encode",
    "read_audio",
    "score",
    "stream",
    "write_audio",
]

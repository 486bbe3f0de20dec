"""wavegen: WaveNet neural vocoder toolkit.

Public API::

    vocoder = wavegen.load_vocoder(path)        # mel in, audio out (see wavegen.vocoder)
    wavegen.score(vocoder, wav).bits_per_sample  # how likely audio is under the model
    from wavegen import WaveNet, ModelConfig, mulaw_encode, mulaw_decode, mel_spectrogram
"""

from .audio import read_audio, write_audio
from .config import AudioConfig, DataConfig, ModelConfig, Recipe, TrainConfig, load_recipe
from .errors import WavegenError
from .features import PRESETS, MelPreset, get_preset, mel_spectrogram
from .generation import generate, stream
from .model import WaveNet
from .mulaw import mulaw_decode, mulaw_encode
from .score import Score, score
from .vocoder import Vocoder, load_vocoder

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

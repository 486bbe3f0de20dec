"""Thin adapters that let a TTS framework call a wavegen :class:`~wavegen.inference.vocoder.Vocoder`.

Each one checks the framework's feature settings against the vocoder's mel preset (one line
naming the setting and both values) and converts the framework's mel convention to the
preset's (wavegen.data.tts_mels holds the conversions):

    espnet.py       ESPnetVocoder: stands where ESPnet2's Text2Speech keeps its vocoder
                    (feats (T, n_mels) log-mel of base log_base in, waveform out)
    coqui.py        CoquiVocoder: Coqui TTS's normalised dB mels, called as Coqui's synthesizer
                    calls a vocoder model (inference(mel (B, n_mels, T)) -> (B, 1, T·hop))
    speechbrain.py  SpeechBrainVocoder (decode_batch, decode_spectrogram) and NeMoVocoder
                    (convert_spectrogram_to_audio), natural-log mels as those toolkits make them
"""

from .coqui import CoquiVocoder
from .espnet import ESPnetVocoder
from .speechbrain import NeMoVocoder, SpeechBrainVocoder

__all__ = ["CoquiVocoder", "ESPnetVocoder", "NeMoVocoder", "SpeechBrainVocoder"]

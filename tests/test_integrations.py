"""The TTS framework adapters (wavegen.integrations): ESPnet2 against the real espnet package
(its LogMelFbank and a tiny random-weight Tacotron 2 run teacher-forced); Coqui TTS, SpeechBrain
and NeMo against their documented formulas (their packages need torchaudio, which does not load
beside torch 2.13 and which wavegen may not depend on)."""

import math
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from wavegen.core.audio import read_audio
from wavegen.core.config import ModelConfig
from wavegen.core.errors import WavegenError
from wavegen.core.features import get_preset, mel_spectrogram
from wavegen.inference.vocoder import Vocoder
from wavegen.integrations import CoquiVocoder, ESPnetVocoder, NeMoVocoder, SpeechBrainVocoder
from wavegen.model import WaveNet

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "corpora" / "ljspeech-mini" / "wavs" / "LJ001-0008.wav"  # 1.8 s


@pytest.fixture(scope="module")
def clip():
    wav, _ = read_audio(CLIP, sample_rate=22050)
    return wav


def tiny_vocoder(preset="tacotron2") -> Vocoder:
    torch.manual_seed(0)
    config = ModelConfig(layers=2, stacks=1, residual_channels=4, gate_channels=8, skip_channels=4)
    return Vocoder(WaveNet(config), get_preset(preset))


def assert_close_above_floor(got, want, floor, tolerance):
    """Equal where the mel is above ``floor`` (frameworks clamp silence differently)."""
    mask = want > floor + 1.0
    assert mask.mean() > 0.5
    delta = np.abs(np.asarray(got)[mask] - np.asarray(want)[mask]).max()
    assert delta < tolerance, delta


# ---- ESPnet2 (the real package) -------------------------------------------------------------


def espnet_fbank(**overrides):
    from espnet2.tts.feats_extract.log_mel_fbank import LogMelFbank

    conf = dict(fs=22050, n_fft=1024, win_length=1024, hop_length=256, n_mels=80, fmin=80, fmax=7600)
    return LogMelFbank(**{**conf, **overrides})


def test_espnet_logmel_of_a_real_clip_is_wavegens_espnet_mel(clip):
    fbank = espnet_fbank()
    feats, _ = fbank(torch.from_numpy(clip)[None], torch.tensor([len(clip)]))  # (1, T, 80) log10
    adapter = ESPnetVocoder.from_model(tiny_vocoder("espnet"), fbank)
    ln = adapter.natural_log(feats[0]).T.numpy()
    want = mel_spectrogram(clip, "espnet") * math.log(10)
    assert ln.shape == want.shape
    assert_close_above_floor(ln, want, math.log(1e-10), 1e-3)
    natural = ESPnetVocoder.from_model(tiny_vocoder("espnet"), espnet_fbank(log_base=None))
    assert natural.log_base is None


def test_espnet_tts_model_teacher_forced_mel_vocoded_through_the_adapter(clip):
    from espnet2.tts.espnet_model import ESPnetTTSModel
    from espnet2.tts.tacotron2 import Tacotron2

    torch.manual_seed(0)
    taco = Tacotron2(
        idim=12, odim=80, embed_dim=16, elayers=1, eunits=16, econv_layers=1, econv_chans=16, adim=16,
        aconv_chans=4, dlayers=1, dunits=16, prenet_units=16, postnet_layers=1, postnet_chans=16,
    )  # fmt: skip
    model = ESPnetTTSModel(
        feats_extract=espnet_fbank(), pitch_extract=None, energy_extract=None, normalize=None,
        pitch_normalize=None, energy_normalize=None, tts=taco,
    )  # fmt: skip
    model.eval()
    speech = torch.from_numpy(clip[: 22050 // 2])
    with torch.no_grad():
        out = model.inference(torch.tensor([3, 5, 7, 2, 11]), speech=speech, use_teacher_forcing=True)
    feat_gen = out["feat_gen"]  # (T, 80) log10, as Text2Speech hands it to its vocoder
    assert feat_gen.dim() == 2 and feat_gen.shape[1] == 80
    vocoder = tiny_vocoder("espnet")
    adapter = ESPnetVocoder.from_model(vocoder, model, seed=0, check=False)  # random weights: any values
    wav = adapter(feat_gen)
    assert wav.shape == (feat_gen.shape[0] * 256,) and bool(torch.isfinite(wav).all())
    direct = vocoder(feat_gen.T, seed=0, check=False)  # the espnet preset is ESPnet's log10 mel as is
    assert torch.equal(wav, direct)
    with pytest.raises(WavegenError) as err:
        ESPnetVocoder.from_model(vocoder, espnet_fbank(fmin=0))
    assert str(err.value).startswith(
        "ESPnet feats_extract_conf: fmin is 0, but the vocoder's espnet preset has 80.0"
    )
    with pytest.raises(WavegenError, match="fs is 24000"):
        ESPnetVocoder.from_config(vocoder, {"fs": 24000, "n_fft": 1024, "hop_length": 256})


# ---- Coqui TTS (its documented AudioProcessor formula) ----------------------------------------

COQUI_LJSPEECH = {  # the audio section of Coqui's LJSpeech Tacotron 2 configs
    "sample_rate": 22050, "fft_size": 1024, "win_length": 1024, "hop_length": 256, "num_mels": 80,
    "mel_fmin": 0.0, "mel_fmax": 8000.0, "ref_level_db": 20, "min_level_db": -100, "max_norm": 4.0,
    "symmetric_norm": True, "signal_norm": True, "clip_norm": True, "spec_gain": 20.0,
    "log_func": "np.log10", "preemphasis": 0.0, "stats_path": None,
}  # fmt: skip


def coqui_melspectrogram(wav, audio):
    """TTS/utils/audio/processor.py AudioProcessor.melspectrogram, written out with librosa as
    Coqui computes it: |stft| (reflect-padded, centred), slaney mel basis, amp_to_db, normalize."""
    stft = librosa.stft(
        y=wav, n_fft=audio["fft_size"], hop_length=audio["hop_length"], win_length=audio["win_length"],
        pad_mode="reflect", window="hann", center=True,
    )  # fmt: skip
    basis = librosa.filters.mel(
        sr=audio["sample_rate"], n_fft=audio["fft_size"], n_mels=audio["num_mels"],
        fmin=audio["mel_fmin"], fmax=audio["mel_fmax"],
    )  # fmt: skip
    db = audio["spec_gain"] * np.log10(np.maximum(1e-5, basis @ np.abs(stft))) - audio["ref_level_db"]
    m, low = audio["max_norm"], audio["min_level_db"]
    return np.clip((2 * m) * ((db - low) / -low) - m, -m, m)


def test_coqui_mel_of_a_real_clip_converts_to_wavegens_and_is_vocoded(clip):
    vocoder = tiny_vocoder("tacotron2")
    adapter = CoquiVocoder(vocoder, COQUI_LJSPEECH, seed=0, check=False)
    coqui = coqui_melspectrogram(clip, COQUI_LJSPEECH)
    ln = adapter.natural_log(coqui).numpy()
    want = mel_spectrogram(clip, "tacotron2")
    assert ln.shape == want.shape
    assert_close_above_floor(ln, want, math.log(1e-4), 1e-3)  # Coqui's floor: -80 dB
    device = next(adapter.parameters()).device  # what Coqui's synthesizer asks of a vocoder model
    wav = adapter.inference(torch.from_numpy(coqui[:, :40])[None].float().to(device))
    assert wav.shape == (1, 1, 40 * 256)
    expected = vocoder(adapter.natural_log(coqui[:, :40]), seed=0, check=False)
    assert torch.equal(wav[0, 0], expected)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"mel_fmax": 7600.0},
            "Coqui audio config: mel_fmax is 7600.0, but the vocoder's tacotron2 preset has 8000.0",
        ),
        (
            {"hop_length": 275},
            "Coqui audio config: hop_length is 275, but the vocoder's tacotron2 preset has 256",
        ),
        ({"stats_path": "scale_stats.npy"}, "Coqui audio.stats_path: mean-variance normalised mels"),
        ({"log_func": "np.exp"}, "audio.log_func must be np.log10 or np.log"),
    ],
)
def test_coqui_settings_that_do_not_fit_are_one_line(change, message):
    with pytest.raises(WavegenError) as err:
        CoquiVocoder(tiny_vocoder(), {**COQUI_LJSPEECH, **change})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


# ---- SpeechBrain and NeMo (their documented conventions) ------------------------------------


def test_speechbrain_decode_batch_masks_each_row_to_its_length(clip):
    vocoder = tiny_vocoder()
    mel = torch.from_numpy(mel_spectrogram(clip, "tacotron2"))[:, :30]  # ln(max(mel, 1e-5)): SpeechBrain's
    batch = torch.stack([mel, mel])
    adapter = SpeechBrainVocoder(vocoder, seed=3)
    out = adapter.decode_batch(batch, mel_lens=torch.tensor([30, 20]))
    assert out.shape == (2, 1, 30 * 256)
    expected = vocoder.batch([mel, mel[:, :20]], seed=3)
    assert torch.equal(out[0, 0], expected[0]) and torch.equal(out[1, 0, : 20 * 256], expected[1])
    assert not out[1, 0, 20 * 256 :].any()
    one = adapter.decode_spectrogram(mel)
    assert one.shape == (1, 30 * 256)
    with pytest.raises(WavegenError, match="expected \\(batch, 80, frames\\)"):
        adapter.decode_batch(batch.transpose(1, 2))
    with pytest.raises(WavegenError, match="natural-log"):
        SpeechBrainVocoder(tiny_vocoder("espnet"))


def test_nemo_convert_spectrogram_removes_the_log_guard(clip):
    """NeMo's FilterbankFeatures: ln(mel + 2**-24); the guard is removed before vocoding."""
    magnitude = np.exp(mel_spectrogram(clip, "tacotron2").astype(np.float64))  # clamped at 1e-5
    nemo_spec = torch.from_numpy(np.log(magnitude + 2**-24)).float()[None]
    adapter = NeMoVocoder(tiny_vocoder(), seed=1)
    ln = adapter.natural_log(nemo_spec)[0].numpy()
    assert_close_above_floor(ln, np.log(magnitude), math.log(1e-5), 1e-5)
    audio = adapter.convert_spectrogram_to_audio(spec=nemo_spec[:, :, :25])
    assert audio.shape == (1, 25 * 256) and bool(torch.isfinite(audio).all())
    with pytest.raises(WavegenError, match="log_zero_guard_type must be add or clamp"):
        NeMoVocoder(tiny_vocoder(), log_zero_guard_type="mul")


def coqui_adapter(vocoder):
    audio = {"sample_rate": 22050, "fft_size": 1024, "hop_length": 256, "win_length": 1024}
    return CoquiVocoder(vocoder, {**audio, "num_mels": 80, "mel_fmin": 0, "mel_fmax": 8000})


@pytest.mark.parametrize("framework", ["speechbrain", "nemo", "coqui", "espnet"])
@pytest.mark.parametrize(
    "value, expected",
    [
        (np.array([[1, "a"]], dtype=object), "expected a float tensor or array of mels, got dtype object"),
        ("mel.npy", "expected a float tensor or array of mels, got dtype <U7"),
        (None, "expected a float tensor or array of mels, got dtype object"),
        (torch.zeros(1, 80, 4, dtype=torch.complex64), "expected a float tensor or array of mels, got dtype"),
        (torch.zeros(0, 80, 4), "an empty batch (no mels)"),
    ],
)
def test_an_input_that_is_no_batch_of_mels_is_one_line_in_every_adapter(framework, value, expected):
    """An object array, a string, None or a complex tensor was a TypeError (or a silent cast that
    dropped the imaginary part), an empty batch "max() arg is an empty sequence" or "stack expects
    a non-empty TensorList"."""
    vocoder = tiny_vocoder()
    call = {
        "speechbrain": SpeechBrainVocoder(vocoder).decode_batch,
        "nemo": lambda x: NeMoVocoder(vocoder).convert_spectrogram_to_audio(spec=x),
        "coqui": coqui_adapter(vocoder).inference,
        "espnet": ESPnetVocoder(vocoder),
    }[framework]
    if framework == "espnet" and isinstance(value, torch.Tensor):
        value = value.transpose(1, 2)  # ESPnet passes (T, n_mels)
    with pytest.raises(WavegenError) as err:
        call(value)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_espnet_feats_of_one_dimension_are_one_line():
    with pytest.raises(WavegenError, match=r"ESPnet feats: expected \(T, 80\) as Text2Speech passes them"):
        ESPnetVocoder(tiny_vocoder())(torch.zeros(80))


@pytest.mark.parametrize(
    "lens, expected",
    [
        ([31, 20], "mel_lens[0] is 31, longer than the batch's 30 frames"),
        ([-2, 20], "mel_lens[0] is -2; expected 1 to 30 frames"),
        ([0, 20], "mel_lens[0] is 0; expected 1 to 30 frames"),
        ([2.7, 20.0], "mel_lens[0] is 2.7; expected a whole number of frames"),
        ([30], "mel_lens has 1 lengths for a batch of 2"),
        ([[30, 20]], "mel_lens has 1 lengths for a batch of 2"),
    ],
)
def test_speechbrain_mel_lens_that_do_not_fit_the_batch_are_one_line(clip, lens, expected):
    """A length beyond T was cut to T, a negative one cut frames from the end (mel[:, :-2]), 2.7
    became 2, a wrong count was an IndexError: every one silently vocoded something else."""
    mel = torch.from_numpy(mel_spectrogram(clip, "tacotron2"))[:, :30]
    with pytest.raises(WavegenError) as err:
        SpeechBrainVocoder(tiny_vocoder()).decode_batch(torch.stack([mel, mel]), torch.tensor(lens))
    assert str(err.value) == f"SpeechBrain spectrogram: {expected}"


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"fs": "abc"}, "ESPnet feats_extract_conf: fs is 'abc'; expected a number"),
        ({"n_fft": [1024]}, "ESPnet feats_extract_conf: n_fft is [1024]; expected a number"),
        ({"log_base": float("nan")}, "ESPnet log_base must be positive and not 1, got nan"),
        ([("fs", 22050)], "ESPnet feats_extract_conf: expected a mapping of LogMelFbank settings, got list"),
    ],
)
def test_espnet_settings_that_are_not_numbers_are_one_line(conf, message):
    """A string or list setting was a ValueError/TypeError from float(), a NaN log base was
    accepted (and vocoded NaN mels), a list of pairs a TypeError from dict.update."""
    base = {"fs": 22050, "n_fft": 1024, "hop_length": 256, "n_mels": 80, "fmin": 80, "fmax": 7600}
    conf = {**base, **conf} if isinstance(conf, dict) else conf
    with pytest.raises(WavegenError) as err:
        ESPnetVocoder.from_config(tiny_vocoder("espnet"), conf)
    assert str(err.value) == message

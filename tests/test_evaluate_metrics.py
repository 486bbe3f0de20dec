"""The evaluation metrics on real speech (an LJSpeech clip) and on wavegen's synthetic demo
speech (so they never all skip): known manipulations move each metric the right way, and the
numbers agree with independent computations (librosa's mel and DTW, ESPnet's MCD framing,
scipy's t-interval)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavegen.core.features import get_preset, mel_spectrogram
from wavegen.core.statistics import describe, t_interval
from wavegen.data.corpora.demo import SPEAKERS, synthesize_utterance
from wavegen.evaluate.alignment import accumulated_cost, dtw_path
from wavegen.evaluate.metrics import (
    DNSMOS,
    HIGHER_IS_BETTER,
    METRICS,
    Features,
    mcep_params,
    mel_cepstral_distortion,
    score,
    stoi_scores,
)
from wavegen.inference.griffinlim import griffin_lim

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
LJ_CLIP = SHARED / "ljspeech-mini" / "wavs" / "LJ001-0008.wav"  # 1.8 s, the shortest of the 20
PRESET = get_preset("tacotron2")
SR = PRESET.sample_rate
pytestmark = pytest.mark.slow  # PESQ, STOI, DNSMOS, MCD and F0 of real speech: minutes on 2 cores


def demo_speech() -> np.ndarray:
    """A 105 Hz voice of the demo corpus (the lowest: the hardest for F0)."""
    name, f0, scale, breath = SPEAKERS[2]
    wav = synthesize_utterance(np.random.default_rng([7, 2, 0]), f0, scale, breath)
    return wav[: int(1.6 * SR)]  # short clips keep the suite quick


@pytest.fixture(scope="module", params=["ljspeech", "demo"])
def speech(request):
    """(name, (T,) float64 reference at 22050 Hz, a whole number of hops long)."""
    if request.param == "ljspeech":
        if not LJ_CLIP.is_file():
            pytest.skip(f"shared corpora not found at {SHARED}")
        wav, sr = sf.read(LJ_CLIP)
        assert sr == SR
    else:
        wav = demo_speech()
    hops = len(wav) // PRESET.hop_length
    return request.param, wav[: hops * PRESET.hop_length]


@pytest.fixture(scope="module")
def dnsmos():
    return DNSMOS()


@pytest.fixture(scope="module")
def scored(speech, dnsmos):
    """Scores of the reference against itself, noisy copies, a delayed and a pitch-shifted
    copy, and Griffin-Lim from the reference's own mel."""
    import librosa

    _, ref_wav = speech
    ref = Features(ref_wav, PRESET)
    rng = np.random.default_rng(0)
    out = {"identical": score(ref, ref, dnsmos)}
    power = np.mean(ref_wav**2)
    for snr in (20, 5):
        noise = rng.standard_normal(len(ref_wav))
        noise *= np.sqrt(power / np.mean(noise**2) / 10 ** (snr / 10))
        out[f"snr{snr}"] = score(ref, Features(ref_wav + noise, PRESET), dnsmos)
    delay = int(0.010 * SR)
    delayed = np.concatenate([np.zeros(delay), ref_wav])[: len(ref_wav)]
    out["delayed"] = score(ref, Features(delayed, PRESET), dnsmos)
    # Played 2^(1/12) times faster: every frequency up by exactly 100 cents (and 5.6 % shorter,
    # which DTW absorbs).
    shifted = librosa.resample(ref_wav, orig_sr=SR * 2 ** (100 / 1200), target_sr=SR)
    out["pitch+100c"] = score(ref, Features(shifted, PRESET), dnsmos)
    mel = mel_spectrogram(ref_wav.astype(np.float32), PRESET)[:, :-1]  # the cache's frames
    out["griffin_lim"] = score(ref, Features(griffin_lim(mel, PRESET).astype(np.float64), PRESET), dnsmos)
    return out


def test_identical_signals_score_perfectly(scored):
    s = scored["identical"]
    assert s["mcd_db"] == 0 and s["mcd_db_c0"] == 0
    assert s["log_mel_l1"] == 0 and s["mrstft"] == 0
    assert s["f0_rmse_cents"] == 0 and s["vuv_error"] == 0
    assert s["f0_rmse_cents_pyin"] == 0 and s["vuv_error_pyin"] == 0
    assert s["pesq_wb"] == pytest.approx(4.644, abs=0.01)
    assert s["stoi"] == pytest.approx(1.0, abs=1e-6) and s["estoi"] == pytest.approx(1.0, abs=1e-6)
    assert 1.0 <= s["dnsmos_ovrl"] <= 5.0


def test_more_noise_scores_worse_each_time(scored):
    clean, mid, loud = scored["identical"], scored["snr20"], scored["snr5"]
    for metric in ("pesq_wb", "stoi", "estoi"):
        assert clean[metric] > mid[metric] > loud[metric], (metric, clean[metric], mid[metric], loud[metric])
    for metric in ("mcd_db", "mcd_db_c0", "log_mel_l1", "mrstft"):
        assert clean[metric] < mid[metric] < loud[metric], (metric, clean[metric], mid[metric], loud[metric])


def test_a_delayed_copy_keeps_mcd_low_through_dtw(scored):
    delayed, noisy = scored["delayed"], scored["snr20"]
    # 10 ms is 0.86 of a hop: DTW re-pairs whole frames, so what remains is the sub-frame offset.
    assert delayed["mcd_db"] < 2.5 and delayed["mcd_db"] < 0.3 * noisy["mcd_db"], delayed
    assert delayed["log_mel_l1"] > 0.2, delayed  # frame by frame, the delay shows


def test_a_copy_100_cents_higher_has_f0_rmse_near_100_cents(scored):
    s = scored["pitch+100c"]
    assert s["f0_rmse_cents"] == pytest.approx(100, abs=15), s
    assert s["vuv_error"] < 0.05, s
    assert s["f0_rmse_cents_pyin"] == pytest.approx(100, abs=15), s
    assert s["vuv_error_pyin"] < 0.1, s


def test_noise_is_unvoiced_to_pyin_where_speech_is_voiced(speech):
    """pYIN's voicing of the reference covers its voiced speech, and white noise of the same
    power is almost never voiced: the V/UV error of noise against speech is about the share of
    voiced frames."""
    _, ref_wav = speech
    ref = Features(ref_wav, PRESET)
    voiced_share = float(np.mean(ref.f0_pyin > 0))
    assert voiced_share > 0.3, voiced_share
    noise = np.random.default_rng(1).standard_normal(len(ref_wav)) * np.std(ref_wav)
    assert np.mean(Features(noise, PRESET).f0_pyin > 0) < 0.05
    assert len(ref.f0_pyin) == 1 + len(ref_wav) // PRESET.hop_length == len(ref.mcep)


def test_griffin_lim_scores_worse_than_ground_truth_on_every_metric(scored):
    gt, gl = scored["identical"], scored["griffin_lim"]
    for metric in METRICS:
        if metric in HIGHER_IS_BETTER:
            assert gl[metric] < gt[metric], (metric, gl[metric], gt[metric])
        else:
            assert gl[metric] > gt[metric], (metric, gl[metric], gt[metric])


def test_log_mel_l1_matches_librosa(speech, scored):
    """The same mel error from librosa's own STFT and mel filterbank."""
    import librosa

    _, ref_wav = speech
    rng = np.random.default_rng(0)  # the scored fixture's first draw: its 20 dB noise
    noise = rng.standard_normal(len(ref_wav))
    noise *= np.sqrt(np.mean(ref_wav**2) / np.mean(noise**2) / 10**2)

    def log_mel(x):
        mel = librosa.feature.melspectrogram(
            y=x, sr=SR, n_fft=1024, hop_length=256, win_length=1024, center=True, pad_mode="reflect",
            power=1.0, n_mels=80, fmin=0.0, fmax=8000.0,
        )  # fmt: skip
        return np.log(np.maximum(mel, 1e-5))

    expected = np.mean(np.abs(log_mel(ref_wav) - log_mel(ref_wav + noise)))
    assert scored["snr20"]["log_mel_l1"] == pytest.approx(expected, rel=1e-3)


def test_mcd_with_c0_matches_espnet_framing_and_librosa_dtw(speech):
    """mcd_db_c0 against ESPnet's recipe computed independently: non-centred Hamming frames,
    its own frame loop, librosa's DTW. Centring shifts the frames by half a window, so the two
    agree closely but not exactly."""
    import librosa
    import pysptk

    _, ref_wav = speech
    rng = np.random.default_rng(1)
    sys_wav = ref_wav + 0.01 * rng.standard_normal(len(ref_wav))
    order, alpha = mcep_params(SR)

    def espnet_mcep(x):
        x = x * 32768
        n = (len(x) - 1024) // 256 + 1
        win = pysptk.sptk.hamming(1024)
        return np.stack(
            [
                pysptk.mcep(x[256 * i : 256 * i + 1024] * win, order, alpha, eps=1e-6, etype=1)
                for i in range(n)
            ]
        )

    a, b = espnet_mcep(ref_wav), espnet_mcep(sys_wav)
    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    expected = mel_cepstral_distortion(a[path[::-1, 0]], b[path[::-1, 1]])
    ref, sys_ = Features(ref_wav, PRESET), Features(sys_wav, PRESET)
    ix, iy = dtw_path(ref.mcep, sys_.mcep)
    ours = mel_cepstral_distortion(ref.mcep[ix], sys_.mcep[iy])
    assert ours == pytest.approx(expected, rel=0.05), (ours, expected)


def test_dtw_finds_librosas_optimal_cost():
    import librosa

    rng = np.random.default_rng(3)
    for n, m in ((1, 5), (7, 7), (40, 23), (64, 90)):
        x, y = rng.standard_normal((n, 4)), rng.standard_normal((m, 4))
        ix, iy = dtw_path(x, y)
        D, _ = librosa.sequence.dtw(X=x.T, Y=y.T, metric="euclidean")
        cost = np.linalg.norm(x[ix] - y[iy], axis=1).sum()
        assert cost == pytest.approx(D[-1, -1], rel=1e-9)
        steps = np.diff(np.stack([ix, iy]), axis=1)
        assert (ix[0], iy[0], ix[-1], iy[-1]) == (0, 0, n - 1, m - 1)
        assert ((steps >= 0) & (steps <= 1)).all() and (steps.sum(axis=0) > 0).all()
    cost = np.array([[1.0, 2.0], [3.0, 1.0]])
    np.testing.assert_array_equal(accumulated_cost(cost), [[1, 3], [4, 2]])


def test_t_interval_matches_scipy():
    from scipy import stats

    sample = np.array([3.1, 2.7, 3.9, 3.3, 2.2, 3.6, 4.1, 2.9])
    expected = stats.t.interval(0.95, len(sample) - 1, loc=sample.mean(), scale=stats.sem(sample))
    assert t_interval(sample) == pytest.approx(expected, rel=1e-12)
    d = describe([*sample, float("nan")])  # NaN (a metric that failed) is left out and counted out
    assert d["n"] == 8 and d["mean"] == pytest.approx(sample.mean())
    assert d["std"] == pytest.approx(sample.std(ddof=1)) and d["ci95"] == pytest.approx(list(expected))
    assert describe([2.0]) == {"mean": 2.0, "std": None, "ci95": None, "n": 1}


def test_dnsmos_runs_from_the_installed_package_without_network(monkeypatch):
    """The ONNX weights are files inside speechmos; scoring opens no connection."""
    import socket

    import speechmos

    models = Path(speechmos.__file__).parent / "dnsmos_models"
    assert (models / "sig_bak_ovr.onnx").stat().st_size > 100_000
    assert (models / "model_v8.onnx").stat().st_size > 100_000

    def refuse(*args, **kwargs):
        raise AssertionError("DNSMOS tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    wav = demo_speech()
    scores = DNSMOS()(Features(wav, PRESET).wav16k)
    assert set(scores) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}
    assert all(1.0 <= v <= 5.0 for v in scores.values()), scores


def test_stoi_of_a_clip_too_short_for_pystoi_is_left_out_with_a_note(speech):
    """pystoi returns 1e-05 (with a warning) below 30 frames of speech; that was averaged in as
    a score ("0.000 ± 0.000"). Now it is NaN with a note, as PESQ's refusals are."""
    _, speech = speech
    ref = speech[: int(0.2 * SR)]
    notes: list[str] = []
    scores = stoi_scores(ref, ref, SR, notes)
    assert np.isnan(scores["stoi"]) and np.isnan(scores["estoi"]), scores
    assert len(notes) == 1 and notes[0].startswith("stoi, estoi: left out: pystoi needs"), notes
    notes.clear()
    full = stoi_scores(speech, speech, SR, notes)
    assert full["stoi"] > 0.99 and full["estoi"] > 0.99 and notes == []

"""Per-utterance objective metrics of a vocoded signal against its reference.

Every metric is defined in :data:`DEFINITIONS` exactly as computed here; the report prints those
definitions. Both signals are (T,) float arrays in [-1, 1] at the evaluation rate (the preset's
sample rate). Reference features that every system is compared against (log-mel, mel-cepstra,
F0, 16 kHz audio) are computed once per utterance in :class:`Features` and shared by all systems.

The metric libraries (pysptk, pyworld, pesq, pystoi, speechmos/onnxruntime) are the ``eval``
extra; :func:`require` names the one that is missing and how to install it.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..core.errors import WavegenError
from ..core.features import MelPreset, mel_spectrogram
from .alignment import dtw_path

METRICS = (
    "log_mel_l1",
    "mrstft",
    "mcd_db",
    "mcd_db_c0",
    "f0_rmse_cents",
    "vuv_error",
    "f0_rmse_cents_pyin",
    "vuv_error_pyin",
    "pesq_wb",
    "stoi",
    "estoi",
    "dnsmos_ovrl",
    "dnsmos_sig",
    "dnsmos_bak",
    "dnsmos_p808",
)
HIGHER_IS_BETTER = {"pesq_wb", "stoi", "estoi", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}

# ESPnet's evaluate_mcd.py: (order, all-pass constant α) of the mel-cepstrum by sample rate.
MCEP_PARAMS = {16000: (23, 0.42), 22050: (34, 0.45), 24000: (34, 0.46)}
MCEP_FFT = 1024  # samples per analysis frame (ESPnet's default n_fft), Hamming window
F0_RANGE = (40.0, 800.0)  # Hz, Harvest's search range (ESPnet's evaluate_f0.py)
# A second, independent tracker: probabilistic YIN (Mauch & Dixon 2014, librosa.pyin) over a
# speech range. Harvest finds F0 in breathy or noisy frames that pYIN calls unvoiced, so its
# V/UV error is the more lenient of the two; reporting both keeps one tracker's habits from
# deciding whether a vocoder voices speech.
PYIN_RANGE = (60.0, 500.0)  # Hz
PYIN_FRAME = 1024  # samples per pYIN frame (centred, one frame every hop like the mel-cepstra)
# ParallelWaveGAN's multi-resolution STFT loss: (n_fft, hop, Hann window length).
MRSTFT_RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))
PESQ_RATE = 16000  # Hz: wide-band PESQ and DNSMOS are defined at 16 kHz
CENTS_PER_OCTAVE = 1200.0

DEFINITIONS = {
    "log_mel_l1": "mean over bins and frames of |M_ref − M_sys|, M = the model preset's log-mel "
    "(its own log base and floor) of each signal; frames of the shorter signal (HiFi-GAN's mel error)",
    "mrstft": "ParallelWaveGAN's multi-resolution STFT distance: mean over (n_fft, hop, Hann window) "
    "= (512, 50, 240), (1024, 120, 600), (2048, 240, 1200) of spectral convergence "
    "‖|S_ref| − |S_sys|‖_F / ‖|S_ref|‖_F plus the mean of |log|S_ref| − log|S_sys||, "
    "magnitudes √max(re² + im², 1e-7), centred frames",
    "mcd_db": "mel-cepstral distortion in dB, c0 excluded: (10/ln 10)·√(2·Σ_{d≥1}(c_d,ref − c_d,sys)²) "
    "averaged over the frames of an exact DTW path (Euclidean, on c1..); mel-cepstra from pysptk.mcep "
    "(order/α 23/0.42 at 16 kHz, 34/0.45 at 22.05 kHz, 34/0.46 at 24 kHz; eps 1e-6, etype 1) of "
    "1024-sample Hamming frames every hop samples, centred (zero-padded by 512 at both ends), on "
    "16-bit-scaled samples as ESPnet reads them",
    "mcd_db_c0": "the same with c0 included and the DTW path on the full vectors, as ESPnet's "
    "evaluate_mcd.py computes it (it aligns with fastdtw, an approximation of this exact DTW)",
    "f0_rmse_cents": "WORLD Harvest (pyworld) F0 of each signal, 40–800 Hz, frame period = the preset's "
    "hop; frames paired by the mcd_db DTW path; 1200·√mean((log2 F0_sys − log2 F0_ref)²) over pairs "
    "voiced in both",
    "vuv_error": "share of the DTW-paired Harvest frames whose voicing (F0 > 0) differs",
    "f0_rmse_cents_pyin": "as f0_rmse_cents with librosa's pYIN instead of Harvest: 60–500 Hz, "
    "1024-sample centred frames every hop samples, voicing = pYIN's voiced flag",
    "vuv_error_pyin": "as vuv_error with pYIN's voicing (the stricter tracker: breathy or noisy "
    "frames that Harvest gives an F0 are unvoiced to pYIN)",
    "pesq_wb": "wide-band PESQ (ITU-T P.862.2, the pesq package), both signals resampled to 16 kHz "
    "(soxr HQ); 4.64 is the ceiling",
    "stoi": "STOI (pystoi, extended=False) at the evaluation rate (pystoi resamples to 10 kHz); "
    "samples of the shorter signal",
    "estoi": "extended STOI (pystoi, extended=True), same signals as stoi",
    "dnsmos_ovrl": "DNSMOS P.835 overall quality of the system's signal alone (no reference): "
    "speechmos' ONNX models shipped in its wheel, run with onnxruntime on the 16 kHz signal, "
    "9.01 s windows every 1 s (shorter signals are tiled), mean over windows",
    "dnsmos_sig": "DNSMOS P.835 speech-signal quality, as dnsmos_ovrl",
    "dnsmos_bak": "DNSMOS P.835 background-noise quality, as dnsmos_ovrl",
    "dnsmos_p808": "DNSMOS P.808 overall quality (speechmos' model_v8.onnx), as dnsmos_ovrl",
}

_MODULES = {
    "pysptk": "pysptk",
    "pyworld": "pyworld",
    "pesq": "pesq",
    "pystoi": "pystoi",
    "onnxruntime": "onnxruntime",
    "speechmos": "speechmos",
}


def require(name: str):
    """Import one of the evaluation libraries, or say how to install it."""
    try:
        with warnings.catch_warnings():
            # pyworld 0.3.5 and pysptk 1.0.1 import pkg_resources, which warns on import.
            warnings.simplefilter("ignore", UserWarning)
            return importlib.import_module(name)
    except ImportError as err:
        raise WavegenError(
            f"wavegen evaluate needs {_MODULES.get(name, name)} ({err}); install the eval extra: "
            "pip install -c constraints.txt -e '.[eval]'"
        ) from None


def check_dependencies() -> None:
    """Fail early, with one line, if any metric library is missing."""
    for name in _MODULES:
        require(name)


def mcep_params(sample_rate: int) -> tuple[int, float]:
    try:
        return MCEP_PARAMS[sample_rate]
    except KeyError:
        rates = ", ".join(str(r) for r in MCEP_PARAMS)
        raise WavegenError(
            f"mel-cepstral distortion is defined here at {rates} Hz (ESPnet's orders and α), "
            f"not {sample_rate} Hz"
        ) from None


@dataclass
class Features:
    """One signal and the features every metric needs, computed on first use.

    Attributes:
        wav: (T,) float64 samples at ``preset.sample_rate``.
    """

    wav: np.ndarray
    preset: MelPreset
    notes: list[str] = field(default_factory=list)

    @cached_property
    def log_mel(self) -> np.ndarray:
        """(n_mels, 1 + T // hop) the preset's log-mel."""
        return mel_spectrogram(self.wav.astype(np.float32), self.preset)

    @cached_property
    def mcep(self) -> np.ndarray:
        """(1 + T // hop, order + 1) mel-cepstra of centred Hamming frames."""
        pysptk = require("pysptk")
        order, alpha = mcep_params(self.preset.sample_rate)
        hop = self.preset.hop_length
        x = np.pad(self.wav * 32768.0, MCEP_FFT // 2)  # 16-bit scale, as ESPnet reads its WAVs
        n = 1 + (len(x) - MCEP_FFT) // hop
        frames = np.lib.stride_tricks.sliding_window_view(x, MCEP_FFT)[::hop][:n]
        frames = frames * pysptk.sptk.hamming(MCEP_FFT)
        return np.stack([pysptk.mcep(f, order, alpha, eps=1e-6, etype=1) for f in frames])

    @cached_property
    def f0(self) -> np.ndarray:
        """(frames,) Harvest F0 in Hz, 0 where unvoiced, one frame every hop samples."""
        pyworld = require("pyworld")
        sr, hop = self.preset.sample_rate, self.preset.hop_length
        f0, _ = pyworld.harvest(
            np.ascontiguousarray(self.wav, dtype=np.float64),
            sr,
            f0_floor=F0_RANGE[0],
            f0_ceil=F0_RANGE[1],
            frame_period=1000.0 * hop / sr,
        )
        return f0

    @cached_property
    def f0_pyin(self) -> np.ndarray:
        """(1 + T // hop,) pYIN F0 in Hz, 0 where pYIN finds the frame unvoiced."""
        import librosa

        f0, voiced, _ = librosa.pyin(
            self.wav.astype(np.float64),
            fmin=PYIN_RANGE[0],
            fmax=PYIN_RANGE[1],
            sr=self.preset.sample_rate,
            frame_length=PYIN_FRAME,
            hop_length=self.preset.hop_length,
            center=True,
        )
        return np.where(voiced, np.nan_to_num(f0), 0.0)

    @cached_property
    def wav16k(self) -> np.ndarray:
        """(T',) float32 at 16 kHz for PESQ and DNSMOS."""
        from ..core.audio import resample

        return resample(self.wav.astype(np.float32), self.preset.sample_rate, PESQ_RATE)


def log_mel_l1(ref: Features, sys: Features) -> float:
    n = min(ref.log_mel.shape[1], sys.log_mel.shape[1])
    return float(np.mean(np.abs(ref.log_mel[:, :n] - sys.log_mel[:, :n])))


def mrstft(ref: np.ndarray, sys: np.ndarray) -> float:
    """ParallelWaveGAN's MultiResolutionSTFTLoss (sc + mag, each averaged over resolutions)."""
    import torch

    n = min(len(ref), len(sys))
    x = torch.from_numpy(np.stack([ref[:n], sys[:n]]).astype(np.float32))
    sc, mag = [], []
    for n_fft, hop, win in MRSTFT_RESOLUTIONS:
        spec = torch.stft(
            x, n_fft, hop, win, torch.hann_window(win), center=True, return_complex=True
        )  # (2, n_fft // 2 + 1, frames)
        m = (spec.real**2 + spec.imag**2).clamp_min(1e-7).sqrt()
        sc.append((torch.linalg.norm(m[0] - m[1]) / torch.linalg.norm(m[0])).item())
        mag.append((m[0].log() - m[1].log()).abs().mean().item())
    return float(np.mean(sc) + np.mean(mag))


def mel_cepstral_distortion(ref: np.ndarray, sys: np.ndarray) -> float:
    """(10 / ln 10) · √(2 Σ_d Δc_d²), averaged over paired (L, D) frames."""
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2.0 * np.sum((ref - sys) ** 2, axis=1))))


def cepstral_and_pitch(ref: Features, sys: Features) -> dict[str, float]:
    """mcd_db, mcd_db_c0, and F0 RMSE and V/UV error by Harvest and by pYIN (DTW-aligned frames)."""
    ix, iy = dtw_path(ref.mcep[:, 1:], sys.mcep[:, 1:])
    out = {"mcd_db": mel_cepstral_distortion(ref.mcep[ix, 1:], sys.mcep[iy, 1:])}
    jx, jy = dtw_path(ref.mcep, sys.mcep)
    out["mcd_db_c0"] = mel_cepstral_distortion(ref.mcep[jx], sys.mcep[jy])
    # Harvest and pYIN give one frame per hop like the centred mel-cepstra; pair frames both have.
    out.update(pitch_errors(ref.f0, sys.f0, ix, iy, sys.notes, ""))
    out.update(pitch_errors(ref.f0_pyin, sys.f0_pyin, ix, iy, sys.notes, "_pyin"))
    return out


def pitch_errors(
    f0_ref: np.ndarray, f0_sys: np.ndarray, ix: np.ndarray, iy: np.ndarray, notes: list[str], suffix: str
) -> dict[str, float]:
    """vuv_error and f0_rmse_cents (each name + suffix) over the frame pairs (ix, iy) of a DTW path.

    Args:
        f0_ref, f0_sys: (frames,) F0 in Hz, 0 where unvoiced.
        ix, iy: (L,) paired frame indices into f0_ref and f0_sys.
    """
    keep = (ix < len(f0_ref)) & (iy < len(f0_sys))
    f_ref, f_sys = f0_ref[ix[keep]], f0_sys[iy[keep]]
    voiced = (f_ref > 0) & (f_sys > 0)
    out = {f"vuv_error{suffix}": float(np.mean((f_ref > 0) != (f_sys > 0)))}
    if voiced.any():
        cents = CENTS_PER_OCTAVE * (np.log2(f_sys[voiced]) - np.log2(f_ref[voiced]))
        out[f"f0_rmse_cents{suffix}"] = float(np.sqrt(np.mean(cents**2)))
    else:
        out[f"f0_rmse_cents{suffix}"] = float("nan")
        notes.append(f"f0_rmse_cents{suffix}: no frame voiced in both signals")
    return out


def pesq_wb(ref: Features, sys: Features) -> float:
    pesq = require("pesq")
    try:
        return float(pesq.pesq(PESQ_RATE, ref.wav16k, sys.wav16k, "wb"))
    except Exception as err:  # the C code refuses e.g. a silent signal; say why, score nothing
        sys.notes.append(f"pesq_wb: {type(err).__name__}: {err}".strip())
        return float("nan")


def stoi_scores(
    ref: np.ndarray, sys: np.ndarray, sample_rate: int, notes: list[str] | None = None
) -> dict[str, float]:
    """STOI and ESTOI of (T,) ``sys`` against (T,) ``ref``; NaN (and a line in ``notes``) where
    pystoi cannot score them: with fewer than 30 STFT frames (about 0.4 s) left once it drops
    the silent ones, it returns its 1e-05 sentinel, which would be averaged in as a real score."""
    pystoi = require("pystoi")
    n = min(len(ref), len(sys))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        scores = {
            "stoi": float(pystoi.stoi(ref[:n], sys[:n], sample_rate, extended=False)),
            "estoi": float(pystoi.stoi(ref[:n], sys[:n], sample_rate, extended=True)),
        }
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        if notes is not None:
            notes.append(
                f"stoi, estoi: left out: pystoi needs 30 frames of non-silent speech "
                f"(about 0.4 s), the clip has {n / sample_rate:.2f} s"
            )
        return {"stoi": float("nan"), "estoi": float("nan")}
    return scores


class DNSMOS:
    """speechmos' DNSMOS models, one onnxruntime thread each (the process pool uses the cores).

    The ONNX files are the ones inside the installed speechmos package: nothing is downloaded.
    """

    def __init__(self):
        import os

        ort = require("onnxruntime")
        dnsmos = require("speechmos.dnsmos")
        folder = os.path.join(os.path.dirname(dnsmos.__file__), "dnsmos_models")
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.model = object.__new__(dnsmos.DNSMOS)  # its __init__ takes no session options
        self.model.primary_model_path = os.path.join(folder, "sig_bak_ovr.onnx")
        providers = ["CPUExecutionProvider"]
        self.model.onnx_sess = ort.InferenceSession(
            self.model.primary_model_path, options, providers=providers
        )
        self.model.p808_onnx_sess = ort.InferenceSession(
            os.path.join(folder, "model_v8.onnx"), options, providers=providers
        )

    def __call__(self, wav16k: np.ndarray) -> dict[str, float]:
        scores = self.model(np.clip(wav16k, -1.0, 1.0).astype(np.float32), PESQ_RATE, False)
        return {
            "dnsmos_ovrl": float(scores["ovrl_mos"]),
            "dnsmos_sig": float(scores["sig_mos"]),
            "dnsmos_bak": float(scores["bak_mos"]),
            "dnsmos_p808": float(scores["p808_mos"]),
        }


def score(ref: Features, sys: Features, dnsmos: DNSMOS) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one system's signal against its reference."""
    out = {"log_mel_l1": log_mel_l1(ref, sys), "mrstft": mrstft(ref.wav, sys.wav)}
    out.update(cepstral_and_pitch(ref, sys))
    out["pesq_wb"] = pesq_wb(ref, sys)
    out.update(stoi_scores(ref.wav, sys.wav, ref.preset.sample_rate, sys.notes))
    out.update(dnsmos(sys.wav16k))
    return {name: out[name] for name in METRICS}

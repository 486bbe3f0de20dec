"""How likely is audio under a WaveNet: teacher-forced negative log-likelihood in bits/sample.

    result = wavegen.score(vocoder, wav)           # Score(samples, bits, bits_per_sample, trace)
    results = wavegen.score(vocoder, [wav1, wav2])  # one Score per waveform, batched together

The audio is scored as the model sees it: its μ-law classes. A WaveNet is a density model,
P(x) = Π P(x_t | x_<t), so −log2 P(x) / T is what an ideal entropy coder driven by the model
would spend per sample (``wavegen compress`` comes within a fraction of a percent of it). For a
mel-conditioned model the mel is computed from the audio itself, so the figure is a *conditional*
likelihood, −log2 P(x | mel(x)), far below what the same model could code without the mel.

Any length in bounded memory: each utterance is cut into windows of ``chunk_samples``, each
preceded by a receptive field of true samples as context, and the windows of all utterances run
through the teacher-forced forward pass ``batch`` at a time. Every window column sees exactly
the samples and conditioning the whole-utterance forward gives it, so the result equals it up to
float rounding (the tests check it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import WavegenError
from ..core.mulaw import mulaw_encode
from ..model import WaveNet

CHUNK_SAMPLES = 16384  # scored samples per window (plus a receptive field of context)
BATCH = 4  # windows per forward pass: logits are batch × (chunk + context) × classes floats
SCORE_PRECISIONS = ("forward", "fp32", "bf16")  # the forward pass, or a sampler kernel's logits


@dataclass
class Score:
    samples: int  # samples scored (a mel model scores whole frames: T // hop · hop)
    bits: float  # −log2 P of the μ-law stream (given the mel, for a mel model)
    conditional: bool  # True when the likelihood is conditioned on a mel of the same audio
    trace: np.ndarray  # (samples,) float32: −log2 P(x_t | x_<t …) of each sample

    @property
    def bits_per_sample(self) -> float:
        return self.bits / max(self.samples, 1)


@dataclass
class _Utterance:
    codes: torch.Tensor  # (T,) int64
    speaker: int | None
    conditioner: object | None  # wavegen.generation.conditioning.Conditioner for mel models
    mel: torch.Tensor | None = None  # (1, C, frames) raw mel of a mel model


def _as_model(model) -> tuple[WaveNet, object | None]:
    from .vocoder import Vocoder

    if isinstance(model, Vocoder):
        return model.model, model
    if isinstance(model, WaveNet):
        return model, None
    raise WavegenError(f"score: expected a WaveNet or a Vocoder, got {type(model).__name__}")


def _speaker_id(model: WaveNet, vocoder, speaker) -> int | None:
    if vocoder is not None:
        ids = vocoder.speaker_ids(speaker, 1)
        return None if ids is None else int(ids[0])
    if model.config.n_speakers == 0:
        if speaker is not None:
            raise WavegenError("this model has no speaker conditioning; do not pass a speaker")
        return None
    if not isinstance(speaker, (int, np.integer)) or not 0 <= int(speaker) < model.config.n_speakers:
        raise WavegenError(f"speaker: expected an id in 0 … {model.config.n_speakers - 1}, got {speaker!r}")
    return int(speaker)


def _prepare(model: WaveNet, vocoder, audio, mel, speaker) -> _Utterance:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio)
    if audio.ndim != 1 or len(audio) == 0:
        raise WavegenError(f"audio: expected a non-empty 1-D waveform, got shape {audio.shape}")
    Q = model.config.quantize_channels
    speaker_id = _speaker_id(model, vocoder, speaker)
    codes = torch.from_numpy(mulaw_encode(audio.astype(np.float32), Q))
    conditioner = None
    if model.upsampler is not None:
        if mel is None:
            if vocoder is None:
                raise WavegenError("this model needs a mel: pass mel=, or a Vocoder to compute it")
            mel = vocoder.mel(audio)
        mel = torch.as_tensor(np.asarray(mel), dtype=torch.float32)
        if mel.dim() != 2 or mel.shape[0] != model.config.cin_channels:
            raise WavegenError(f"mel: expected ({model.config.cin_channels}, frames), got {tuple(mel.shape)}")
        frames = min(mel.shape[1], len(codes) // model.hop_length)
        if frames < 1:
            raise WavegenError(f"audio: {len(codes)} samples is shorter than one frame ({model.hop_length})")
        codes = codes[: frames * model.hop_length]
        from ..generation.conditioning import Conditioner
        from ..generation.weights import StepWeights

        weights = StepWeights.from_model(model)
        spk = None if speaker_id is None else torch.tensor([speaker_id], device=model.embed.weight.device)
        device = model.embed.weight.device
        mel = mel[None, :, :frames].to(device)
        conditioner = Conditioner(model, weights, mel, None, spk, 1)
        return _Utterance(codes, speaker_id, conditioner, mel)
    return _Utterance(codes, speaker_id, conditioner)


@torch.no_grad()
def _score_windows(model: WaveNet, utts: list[_Utterance], chunk: int, batch: int) -> list[np.ndarray]:
    """Per-sample bits of each utterance, (T_i,) float32, from batched windowed forwards."""
    context = model.receptive_field
    device = model.embed.weight.device
    traces = [np.zeros(len(u.codes), dtype=np.float32) for u in utts]
    # (utterance, context start, first scored, end) of every window, in order.
    windows = [
        (i, max(0, a - context), a, min(a + chunk, len(u.codes)))
        for i, u in enumerate(utts)
        for a in range(0, len(u.codes), chunk)
    ]
    for k in range(0, len(windows), batch):
        group = windows[k : k + batch]
        width = max(end - start for _, start, _, end in group)
        codes = torch.full((len(group), width), model.start_class, dtype=torch.int64)
        c = None
        if model.upsampler is not None:
            c = torch.zeros(len(group), model.config.cin_channels, width)
        for row, (i, start, _, end) in enumerate(group):
            codes[row, : end - start] = utts[i].codes[start:end]
            if c is not None:
                c[row, :, : end - start] = utts[i].conditioner.upsampled(start, end)[0]
        speakers = [utts[i].speaker for i, *_ in group]
        speaker = None if speakers[0] is None else torch.tensor(speakers, device=device)
        codes = codes.to(device)
        logits = model.forward_upsampled(codes, None if c is None else c.to(device), speaker)
        logp = F.log_softmax(logits.float(), dim=1).gather(1, codes[:, None, :])[:, 0]  # (B, width)
        bits = (-logp / math.log(2)).cpu().numpy()
        # Padding past a short window's end only follows it (causal), so it changes nothing.
        for row, (i, start, first, end) in enumerate(group):
            traces[i][first:end] = bits[row, first - start : end - start]
    return traces


@torch.no_grad()
def _score_kernel(model: WaveNet, utts: list[_Utterance], chunk: int, precision: str) -> list[np.ndarray]:
    """Per-sample bits from the incremental sampler's teacher-forced logits on the CPU kernel of
    ``precision``, one utterance at a time, ``chunk`` samples of logits at a time."""
    from ..generation import Sampler

    traces = []
    for u in utts:
        T = len(u.codes)
        speaker = None if u.speaker is None else torch.tensor([u.speaker])
        sampler = Sampler(
            model, u.mel, speaker, num_samples=T, temperature=0.0, forced=u.codes[None], keep_logits=True,
            precision=precision,
        )  # fmt: skip
        bits, done = np.zeros(T, dtype=np.float32), 0
        while sampler.remaining:
            _, logits = sampler.run(chunk)  # (1, n, Q)
            n = logits.shape[1]
            logp = F.log_softmax(logits[0], dim=-1).gather(1, u.codes[done : done + n, None])[:, 0]
            bits[done : done + n] = (-logp / math.log(2)).numpy()
            done += n
        traces.append(bits)
    return traces


def score(
    model,
    audio,
    mel=None,
    speaker=None,
    chunk_samples: int = CHUNK_SAMPLES,
    batch: int = BATCH,
    precision: str = "forward",
) -> Score | list[Score]:
    """Teacher-forced −log2 P of audio's μ-law stream under the model.

    Args:
        model: a :class:`~wavegen.inference.vocoder.Vocoder` (mels and speaker names are handled for you)
            or a bare :class:`~wavegen.model.WaveNet` (then give ``mel`` for a mel model).
        audio: (T,) float waveform in [-1, 1] at the model's sample rate, or a list of them
            (scored together in batches).
        mel: (n_mels, F) raw preset mel (or a list) for a mel model; None computes it from
            the audio (Vocoder only).
        speaker: speaker name or id for a multi-speaker model (one for all, or a list).
        chunk_samples: samples scored per window; memory is bounded by it, not by T.
        batch: windows per forward pass.
        precision: "forward" (default: the fp32 forward pass, batched windows) or a sampler
            precision, "fp32" or "bf16": the teacher-forced logits of that CPU kernel, one
            utterance at a time (``bf16`` measures what the reduced-precision kernel costs in
            bits; ``fp32`` equals "forward" up to float rounding).

    Returns:
        A :class:`Score` per waveform (a list for a list).
    """
    net, vocoder = _as_model(model)
    if precision not in SCORE_PRECISIONS:
        raise WavegenError(f"precision must be one of {', '.join(SCORE_PRECISIONS)}, got {precision!r}")
    if precision != "forward" and net.embed.weight.device.type != "cpu":
        raise WavegenError(f"precision {precision} scores with a CPU kernel; use --device cpu")
    if chunk_samples < 1 or batch < 1:
        raise WavegenError(f"chunk_samples and batch must be at least 1, got {chunk_samples}, {batch}")
    many = isinstance(audio, (list, tuple))
    audios = list(audio) if many else [audio]
    mels = list(mel) if isinstance(mel, (list, tuple)) else [mel] * len(audios)
    speakers = list(speaker) if isinstance(speaker, (list, tuple)) else [speaker] * len(audios)
    if len(mels) != len(audios) or len(speakers) != len(audios):
        raise WavegenError(f"score: {len(audios)} waveforms, {len(mels)} mels, {len(speakers)} speakers")
    was_training = net.training
    net.eval()
    try:
        utts = [_prepare(net, vocoder, a, m, s) for a, m, s in zip(audios, mels, speakers)]
        if precision == "forward":
            traces = _score_windows(net, utts, chunk_samples, batch)
        else:
            traces = _score_kernel(net, utts, chunk_samples, precision)
    finally:
        net.train(was_training)
    conditional = net.upsampler is not None
    results = [Score(len(t), float(t.astype(np.float64).sum()), conditional, t) for t in traces]
    return results if many else results[0]

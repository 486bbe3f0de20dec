"""The WaveNet model (van den Oord et al. 2016) with local (mel) and global (speaker) conditioning.

Alignment: ``forward(audio)`` returns logits whose column t models sample t given samples < t
(the model shifts its input right by one, starting from the μ-law class of silence) and the
conditioning at t. So teacher-forced training compares ``logits[..., t]`` with ``audio[..., t]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import ModelConfig
from ..core.errors import WavegenError
from .layers import ResidualLayer
from .upsample import Upsampler


class WaveNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        if c.n_speakers < 0:
            raise WavegenError("model.n_speakers = -1 (auto) must be resolved from the feature cache first")
        self.embed = nn.Embedding(c.quantize_channels, c.residual_channels)
        per_stack = c.layers // c.stacks
        gin = c.gin_channels if c.n_speakers else 0
        self.layers = nn.ModuleList(
            ResidualLayer(
                c.residual_channels,
                c.gate_channels,
                c.skip_channels,
                c.kernel_size,
                dilation=2 ** (i % per_stack),
                cin_channels=c.cin_channels,
                gin_channels=gin,
            )
            for i in range(c.layers)
        )
        self.upsampler = Upsampler(c.cin_channels, c.upsample_scales, c.cin_pad) if c.cin_channels else None
        self.speaker_embed = nn.Embedding(c.n_speakers, c.gin_channels) if c.n_speakers else None
        # The output head: relu -> post_hidden -> relu -> post_logits (1×1 convs), see head().
        self.post_hidden = nn.Conv1d(c.skip_channels, c.skip_channels, 1)
        self.post_logits = nn.Conv1d(c.skip_channels, c.quantize_channels, 1)
        # Mel statistics for presets that normalise (identity otherwise); saved with the weights.
        self.register_buffer("mel_mean", torch.zeros(max(c.cin_channels, 1)))
        self.register_buffer("mel_std", torch.ones(max(c.cin_channels, 1)))

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def receptive_field(self) -> int:
        """Past samples the output at t depends on: 1 + Σ (k − 1)·d (with the input shift)."""
        return 1 + sum(layer.padding for layer in self.layers)

    @property
    def hop_length(self) -> int:
        return self.upsampler.hop_length if self.upsampler is not None else 1

    @property
    def start_class(self) -> int:
        """μ-law class of 0.0, the input before the first sample."""
        return self.config.quantize_channels // 2

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def load_weights(self, state) -> None:
        """``load_state_dict(state)``, or a one-line WavegenError
        saying which weights are missing, unexpected or of another shape."""
        if not isinstance(state, dict):
            raise WavegenError(f"the weights are a {type(state).__name__}, not a mapping of tensors")
        state = dict(state)
        own = self.state_dict()
        problems = []
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing:
            problems.append(f"missing {_some(missing)}")
        if unexpected:
            problems.append(f"unexpected {_some(unexpected)}")
        for key in own:
            value = state.get(key)
            if key in state and not isinstance(value, torch.Tensor):
                problems.append(f"{key} is a {type(value).__name__}, not a tensor")
                break
            if key in state and value.shape != own[key].shape:
                problems.append(f"{key} has shape {tuple(value.shape)}, the model {tuple(own[key].shape)}")
                break
        if problems:
            raise WavegenError("the weights do not fit the model: " + "; ".join(problems))
        self.load_state_dict(state)

    # ---- conditioning ------------------------------------------------------------------------
    def pad_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, C, F) whole-utterance mel -> (B, C, F + 2·cin_pad), edges replicated."""
        pad = self.config.cin_pad
        return F.pad(mel, (pad, pad), mode="replicate") if pad else mel

    def upsample(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, C, F + 2·cin_pad) raw preset mel -> (B, C, F·hop) normalised, upsampled."""
        if self.upsampler is None:
            raise WavegenError("this model has no local conditioning (model.cin_channels = 0)")
        if mel.dim() != 3 or mel.shape[1] != self.config.cin_channels:
            raise WavegenError(
                f"mel: expected shape (batch, {self.config.cin_channels}, frames), got {tuple(mel.shape)}"
            )
        mel = (mel - self.mel_mean[:, None]) / self.mel_std[:, None]
        return self.upsampler(mel)

    def speaker_vector(self, speaker: torch.Tensor | None) -> torch.Tensor | None:
        """(B,) speaker ids -> (B, G, 1) embeddings, or None."""
        if self.speaker_embed is None:
            return None
        if speaker is None:
            raise WavegenError(f"this model needs a speaker id (it has {self.config.n_speakers} speakers)")
        return self.speaker_embed(speaker.long())[:, :, None]

    # ---- teacher-forced forward --------------------------------------------------------------
    def forward(
        self,
        audio: torch.Tensor,
        mel: torch.Tensor | None = None,
        speaker: torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Teacher-forced logits over a whole window in one pass.

        Args:
            audio: (B, T) int64 μ-law classes of the target samples.
            mel: (B, C_in, T/hop + 2·cin_pad) raw preset mel with upsampler context, or None.
            speaker: (B,) int64 speaker ids, or None.
            dtype: None runs the layers as convolutions in the weights' own dtype (the fastest
                full-precision form on the CPU). A dtype runs them as time-major matmuls in it,
                the weights cast from their masters and the residual and skip sums kept in the
                weights' dtype: bfloat16 is mixed precision (see
                :meth:`ResidualLayer.forward_time_major`).

        Returns:
            (B, Q, T) logits, in ``dtype`` if given; column t is the distribution of audio[:, t]
            given audio[:, :t].
        """
        T = audio.shape[1]
        c = None
        if self.upsampler is not None:
            if mel is None:
                raise WavegenError("this model needs a mel spectrogram (local conditioning)")
            c = self.upsample(mel)
            if c.shape[-1] != T:
                raise WavegenError(
                    f"mel gives {c.shape[-1]} samples after upsampling, audio has {T}: expected "
                    f"{T // self.hop_length} frames + 2·{self.config.cin_pad} of context"
                )
        return self.forward_upsampled(audio, c, speaker, dtype)

    def forward_upsampled(
        self,
        audio: torch.Tensor,
        c: torch.Tensor | None = None,
        speaker: torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """:meth:`forward` with the conditioning already upsampled (e.g. a window of a long
        utterance's): audio (B, T) int64, c (B, C_in, T) as :meth:`upsample` returns or None,
        speaker (B,) -> (B, Q, T) logits."""
        B = audio.shape[0]
        start = torch.full((B, 1), self.start_class, dtype=audio.dtype, device=audio.device)
        inputs = torch.cat([start, audio[:, :-1]], dim=1)
        g = self.speaker_vector(speaker)
        if dtype is not None:
            return self._forward_time_major(inputs, c, g, dtype)
        x = self.embed(inputs).transpose(1, 2)  # (B, R, T)
        skips = 0
        for layer in self.layers:
            x, s = layer(x, c, g)
            skips = skips + s
        return self.head(skips * math.sqrt(1.0 / len(self.layers)))

    def head(self, skips: torch.Tensor) -> torch.Tensor:
        """(B, S, T) scaled skip sum -> (B, Q, T) logits."""
        return self.post_logits(F.relu(self.post_hidden(F.relu(skips))))

    def _forward_time_major(
        self, inputs: torch.Tensor, c: torch.Tensor | None, g: torch.Tensor | None, dtype: torch.dtype
    ) -> torch.Tensor:
        """(B, T) input classes, (B, C_in, T) upsampled mel, (B, G_in, 1) -> (B, Q, T) logits."""
        if c is not None:
            c = c.transpose(1, 2).to(dtype, memory_format=torch.contiguous_format)  # (B, T, C_in)
        if g is not None:
            g = g.transpose(1, 2)  # (B, 1, G_in)
        x = self.embed(inputs)  # (B, T, R)
        skips = None
        for layer in self.layers:
            x, s = layer.forward_time_major(x, c, g, dtype)
            skips = s.to(x.dtype) if skips is None else skips + s  # summed in full precision
        h = F.relu(skips * math.sqrt(1.0 / len(self.layers))).to(dtype)
        hidden, out = self.post_hidden, self.post_logits
        h = F.relu(F.linear(h, hidden.weight[:, :, 0].to(dtype), hidden.bias.to(dtype)))
        logits = F.linear(h, out.weight[:, :, 0].to(dtype), out.bias.to(dtype))
        return logits.transpose(1, 2)  # (B, Q, T), classes contiguous in memory


def _some(names: list[str], shown: int = 2) -> str:
    more = f" (+{len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more

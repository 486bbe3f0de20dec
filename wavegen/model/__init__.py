"""WaveNet: dilated causal convolutions, gated activations, residual and skip connections."""

from .layers import ResidualLayer
from .upsample import Upsampler
from .wavenet import WaveNet

__all__ = ["ResidualLayer", "Upsampler", "WaveNet"]

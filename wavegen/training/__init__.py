"""The training engine and its parts.

trainer.py      Trainer and train(): build, resume, the loop of named steps
step.py         optimization_step: loss, backward, clip, optimiser, EMA
meter.py        loss, gradient norm and divergence kept on the device, read at sync points
dataset.py      training windows from the feature cache, the seeded window sampler
optim.py        optimiser and learning-rate schedule
ema.py          exponential moving average of the weights
precision.py    train.precision -> the dtype of the forward pass
distributed.py  DDP under torchrun
checkpoint.py   atomic, verified checkpoints and their rotation
runlog.py       train.log, TensorBoard and the progress bar
"""

from .step import optimization_step
from .trainer import Trainer, TrainResult, train

__all__ = ["TrainResult", "Trainer", "optimization_step", "train"]

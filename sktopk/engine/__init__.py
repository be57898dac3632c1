"""The training engine: batched members, hand-derived gradients, one loop."""

from .hyper import TASKS, Hyper, Task
from .models import ModuleAdapter, StackedMLP, to_sequential
from .trainer import (
    DivergenceError,
    TrainData,
    TrainResult,
    TrainSpec,
    one_thread,
    score,
    train,
)

__all__ = [
    "DivergenceError",
    "Hyper",
    "TASKS",
    "Task",
    "ModuleAdapter",
    "StackedMLP",
    "TrainData",
    "TrainResult",
    "TrainSpec",
    "one_thread",
    "score",
    "to_sequential",
    "train",
]

"""The training engine: batched members, hand-derived gradients, one loop."""

from .hyper import TASKS, Hyper, Task
from .models import ModuleAdapter, StackedMLP, to_sequential
from .scoring import score, score_rows
from .trainer import (
    DivergenceError,
    TrainData,
    TrainResult,
    TrainSpec,
    one_thread,
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
    "score_rows",
    "to_sequential",
    "train",
]

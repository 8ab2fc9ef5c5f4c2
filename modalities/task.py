"""A task feeds an objective: it builds the data, tells the model its spec, evaluates and samples.

Objectives name their task (``text``, ``image``, ``mixed``); train.py looks it up here.
"""
from __future__ import annotations

from pathlib import Path

from core.discovery import import_submodules
from core.model import ModelSpec
from core.registry import Registry

TASKS: Registry[type] = Registry("task")


class Task:
    """Interface (see text_task.py for a complete one)."""

    tokens_per_sample: int = 1

    def __init__(self, cfg, run_dir: Path, resuming: bool, rank: int = 0, world: int = 1):
        raise NotImplementedError

    def spec(self) -> ModelSpec:
        raise NotImplementedError

    def train_batch(self, step: int, micro: int, batch_size: int) -> dict:
        raise NotImplementedError

    def to(self, device) -> None:
        """Keep what training batches are drawn from on ``device`` where the task can (default: no)."""

    def data_state(self) -> dict:
        """Extra state to resume the data stream exactly (pure-function data needs none)."""
        return {}

    def load_data_state(self, state: dict) -> None:
        pass

    def evaluate(self, model, objective, ctx) -> dict:
        return {}

    def write_samples(self, model, objective, step: int, out_dir: Path, ctx) -> Path | None:
        return None


def get_task(name: str) -> type:
    import_submodules("modalities")
    return TASKS.get(name)

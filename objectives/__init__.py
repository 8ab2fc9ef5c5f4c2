"""Training objectives. Each file registers one with ``@OBJECTIVES.register(name)``.

An objective is a class with:
- ``Config``: a dataclass of its knobs (first field ``name``), filled from the ``objective:`` section;
- ``task``: the modality task that feeds it (``text``, ``image`` or ``mixed``);
- ``default_sampler``: the sampler used for samples during training;
- ``__call__(model, batch) -> dict(loss=..., **metrics)``.
"""
from core.discovery import import_submodules
from core.registry import Registry

OBJECTIVES: Registry[type] = Registry("objective")


def get_objective(name: str) -> type:
    import_submodules(__name__)
    return OBJECTIVES.get(name)


def objective_names() -> list[str]:
    import_submodules(__name__)
    return OBJECTIVES.names()

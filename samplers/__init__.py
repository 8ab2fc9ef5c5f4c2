"""Samplers. Each file registers its samplers with ``@SAMPLERS.register(name)``."""
from core.discovery import import_submodules
from core.registry import Registry

SAMPLERS: Registry = Registry("sampler")


def get_sampler(name: str):
    import_submodules(__name__)
    return SAMPLERS.get(name)


def sampler_names() -> list[str]:
    import_submodules(__name__)
    return SAMPLERS.names()

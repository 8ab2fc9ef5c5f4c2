"""Errors that mean "the user asked for something we cannot do": printed plainly, exit code 2."""
from __future__ import annotations

import sys
from contextlib import contextmanager

from core.checkpoint import CheckpointError
from core.config import ConfigError
from core.registry import RegistryError
from core.run_dir import RunDirError


def user_errors() -> tuple[type, ...]:
    from modalities.text_data import DataError
    from modalities.tokenizers import TokenizerError
    from core.distributed import DistributedError
    from samplers.image_common import SamplerMismatch

    return (ConfigError, CheckpointError, RegistryError, RunDirError, DataError, TokenizerError, SamplerMismatch,
            DistributedError)


@contextmanager
def friendly_errors():
    try:
        yield
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

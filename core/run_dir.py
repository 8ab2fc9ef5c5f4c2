"""Run directories: created fresh, or reopened to resume; never silently overwritten."""
from __future__ import annotations

import time
from pathlib import Path


class RunDirError(RuntimeError):
    pass


def default_run_dir(objective: str) -> Path:
    return Path("runs") / f"{objective}-{time.strftime('%Y%m%d-%H%M%S')}"


def open_run_dir(path: Path, resume: bool) -> tuple[Path, bool]:
    """Returns (path, created). A fresh run refuses a non-empty directory; a resume needs one."""
    path = Path(path)
    if resume:
        if not (path / "config.yaml").is_file():
            raise RunDirError(f"cannot resume: {path} is not a run directory (no config.yaml)")
        return path, False
    if path.exists() and any(path.iterdir()):
        raise RunDirError(
            f"run directory {path} already exists: pass --resume to continue it, or choose another --run-dir"
        )
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    return path, created

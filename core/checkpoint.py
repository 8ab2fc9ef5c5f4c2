"""Checkpoints: safetensors files in a step directory, written under a temporary name then renamed.

    ckpt/step_0000500/model.safetensors   weights
                      ema.safetensors     EMA weights (when EMA is on)
                      optim.safetensors   optimizer tensors; optim.json the rest of its state
                      rng.safetensors     RNG states (CPU and CUDA)
                      meta.json           step, trainer state, and the size of every file (written last)

Nothing is unpickled: a truncated or altered file is refused with a message saying what to do.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

STEP_DIR = re.compile(r"^step_(\d+)$")
FORMAT = 1


class CheckpointError(RuntimeError):
    pass


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict, extra: dict) -> dict:
    state: dict = {}
    for key, v in list(tensors.items()) + list(extra["scalars"].items()):
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    return {"state": state, "param_groups": extra["param_groups"]}


def rng_state() -> dict:
    out = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"cuda{i}"] = s
    return out


def set_rng_state(tensors: dict) -> None:
    torch.set_rng_state(tensors["cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(ckpt_root: Path, step: int, model, optimizer=None, ema=None, trainer_state: dict | None = None,
                    rng: dict | None = None, keep: int = 0) -> Path:
    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:07d}"
    tmp = ckpt_root / f".tmp_step_{step:07d}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    if ema is not None:
        save_model(ema.model, str(tmp / "ema.safetensors"))
    if optimizer is not None:
        tensors, extra = _flatten_optimizer(optimizer)
        save_file(tensors, str(tmp / "optim.safetensors"))
        (tmp / "optim.json").write_text(json.dumps(extra))
    save_file(rng if rng is not None else rng_state(), str(tmp / "rng.safetensors"))
    files = {p.name: p.stat().st_size for p in tmp.iterdir()}
    meta = {"format": FORMAT, "step": step, "trainer": trainer_state or {}, "files": files}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    for p in tmp.iterdir():  # make the bytes durable before the rename publishes them
        with open(p, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    if keep > 0:
        for old in list_checkpoints(ckpt_root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Published step directories, oldest first (temporary ones are ignored)."""
    ckpt_root = Path(ckpt_root)
    if not ckpt_root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def verify(ckpt: Path) -> dict:
    """Check that a checkpoint is complete; return its meta. Raises CheckpointError otherwise."""
    ckpt = Path(ckpt)
    meta_path = ckpt / "meta.json"
    if not meta_path.is_file():
        raise CheckpointError(f"{ckpt} has no meta.json: it is not a checkpoint or its writing was cut off")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        raise CheckpointError(f"{meta_path} is corrupt (not valid JSON)") from None
    for name, size in meta.get("files", {}).items():
        path = ckpt / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint {ckpt} is missing {name}")
        actual = path.stat().st_size
        if actual != size:
            raise CheckpointError(f"checkpoint {ckpt} is truncated or altered: {name} has {actual} bytes, expected {size}")
    return meta


def _load_tensors(path: Path) -> dict:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} cannot be read as safetensors ({e}); the checkpoint is corrupt") from None


def load_weights(model, path: Path, strict: bool = True) -> None:
    try:
        missing, unexpected = load_model(model, str(path), strict=False)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} cannot be read as safetensors ({e}); the checkpoint is corrupt") from None
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit this model: {e}") from None
    if strict and (missing or unexpected):
        raise CheckpointError(f"{path} does not fit this model: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")


def load_checkpoint(ckpt: Path, model, optimizer=None, ema=None, restore_rng: bool = True) -> dict:
    """Restore what was saved; returns meta (with the trainer state)."""
    ckpt = Path(ckpt)
    meta = verify(ckpt)
    load_weights(model, ckpt / "model.safetensors")
    if ema is not None:
        if not (ckpt / "ema.safetensors").is_file():
            raise CheckpointError(f"{ckpt} has no EMA weights but train.ema > 0; resume with the EMA setting of the run")
        load_weights(ema.model, ckpt / "ema.safetensors")
    if optimizer is not None:
        device = next(iter(optimizer.param_groups[0]["params"])).device
        tensors = {k: v.to(device) for k, v in _load_tensors(ckpt / "optim.safetensors").items()}
        extra = json.loads((ckpt / "optim.json").read_text())
        optimizer.load_state_dict(_unflatten_optimizer(tensors, extra))
    if restore_rng:
        set_rng_state(_load_tensors(ckpt / "rng.safetensors"))
    return meta


def latest_valid_before(ckpt_root: Path, bad: Path) -> Path | None:
    for p in reversed(list_checkpoints(ckpt_root)):
        if p == bad:
            continue
        try:
            verify(p)
            return p
        except CheckpointError:
            continue
    return None

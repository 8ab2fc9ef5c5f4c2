"""Checkpoints: safetensors files in a step directory, written under a temporary name then renamed.

    ckpt/step_0000500/model.safetensors   full weights (tied aliases once)
                      ema.safetensors     EMA weights (when EMA is on)
                      optim.safetensors   optimizer tensors keyed "param name::key"; optim.json the rest
                      rng.safetensors     RNG states of every rank
                      meta.json           step, trainer state and the size of every file (written last)

Everything is keyed by parameter name and unsharded, so a checkpoint from N ranks (DDP or FSDP2)
loads in one process. Nothing is unpickled: a truncated or altered file is refused with a message.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

STEP_DIR = re.compile(r"^step_(\d+)$")
FORMAT = 2
SEP = "::"


class CheckpointError(RuntimeError):
    pass


def _flatten_optimizer(osd: dict) -> tuple[dict, dict]:
    tensors, scalars = {}, {}
    for name, st in osd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{name}{SEP}{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{name}{SEP}{k}"] = v
    return tensors, {"param_groups": osd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict, extra: dict) -> dict:
    state: dict = {}
    for key, v in list(tensors.items()) + list(extra["scalars"].items()):
        name, k = key.rsplit(SEP, 1)
        state.setdefault(name, {})[k] = v
    return {"state": state, "param_groups": extra["param_groups"]}


def rng_state(rank: int = 0) -> dict:
    out = {f"rank{rank}.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rank{rank}.cuda{i}"] = s
    return out


def set_rng_state(tensors: dict, rank: int = 0) -> None:
    prefix = f"rank{rank}." if f"rank{rank}.cpu" in tensors else "rank0."
    torch.set_rng_state(tensors[prefix + "cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith(prefix + "cuda")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(ckpt_root: Path, step: int, model_sd: dict, optim_sd: dict | None = None, ema_sd: dict | None = None,
                    trainer_state: dict | None = None, rng: dict | None = None, keep: int = 0) -> Path:
    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:07d}"
    tmp = ckpt_root / f".tmp_step_{step:07d}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(model_sd, str(tmp / "model.safetensors"))
    if ema_sd is not None:
        save_file(ema_sd, str(tmp / "ema.safetensors"))
    if optim_sd is not None:
        tensors, extra = _flatten_optimizer(optim_sd)
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


def save_module_checkpoint(ckpt_root: Path, step: int, model, optimizer=None, ema=None, trainer_state=None,
                           keep: int = 0) -> Path:
    """One-process convenience around save_checkpoint."""
    from core.state import model_state, optim_state

    return save_checkpoint(ckpt_root, step, model_state(model, False),
                           optim_state(model, optimizer, False) if optimizer is not None else None,
                           ema.state() if ema is not None else None, trainer_state, rng_state(), keep)


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
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt} has checkpoint format {meta.get('format')}, this code reads format {FORMAT}")
    for name, size in meta.get("files", {}).items():
        path = ckpt / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint {ckpt} is missing {name}")
        actual = path.stat().st_size
        if actual != size:
            raise CheckpointError(f"checkpoint {ckpt} is truncated or altered: {name} has {actual} bytes, expected {size}")
    return meta


def load_tensors(path: Path) -> dict:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} cannot be read as safetensors ({e}); the checkpoint is corrupt") from None


def read_checkpoint(ckpt: Path) -> dict:
    """Verified contents: meta, model, ema (or None), optim (or None), rng."""
    ckpt = Path(ckpt)
    meta = verify(ckpt)
    out = {"meta": meta, "model": load_tensors(ckpt / "model.safetensors"), "ema": None, "optim": None,
           "rng": load_tensors(ckpt / "rng.safetensors")}
    if (ckpt / "ema.safetensors").is_file():
        out["ema"] = load_tensors(ckpt / "ema.safetensors")
    if (ckpt / "optim.safetensors").is_file():
        out["optim"] = _unflatten_optimizer(load_tensors(ckpt / "optim.safetensors"),
                                            json.loads((ckpt / "optim.json").read_text()))
    return out


def load_weights(model, path: Path) -> None:
    """Weights from a .safetensors file into a one-process model."""
    from core.state import load_model_state

    try:
        load_model_state(model, load_tensors(Path(path)), fsdp=False)
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path} does not fit this model: {e}") from None


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

"""Full (unsharded) state of model, optimizer and EMA keyed by parameter names, for every layout:
one process, DDP, or FSDP2 (where gathering and scattering are collectives all ranks join).
A checkpoint written by N ranks is therefore an ordinary single-process checkpoint."""
from __future__ import annotations

import torch


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def unique_names(model: torch.nn.Module) -> dict[int, str]:
    """id(parameter) -> its first name (tied weights appear once)."""
    return {id(p): n for n, p in model.named_parameters()}


def group_names(model, optimizer) -> list[list[str]]:
    """The parameter names of each optimizer group, in the optimizer's order."""
    names = unique_names(model)
    return [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups]


def model_state(model: torch.nn.Module, fsdp: bool) -> dict:
    """Full weights on the CPU (meaningful on rank 0), without aliases of tied weights."""
    if fsdp:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        sd = get_model_state_dict(model, options=_options(cpu_offload=True))
    else:
        sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    keep = set(unique_names(model).values()) | {k for k, _ in model.named_buffers()}
    return {k: v.contiguous() for k, v in sd.items() if k in keep}


def load_model_state(model: torch.nn.Module, sd: dict, fsdp: bool) -> None:
    first_names = unique_names(model)
    full = dict(sd)
    for alias, p in model.named_parameters(remove_duplicate=False):  # restore tied aliases dropped at save time
        if alias not in full:
            first = first_names[id(p)]
            if first in full:
                full[alias] = full[first]
    if fsdp:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        set_model_state_dict(model, full, options=_options())
        return
    missing, unexpected = model.load_state_dict(full, strict=False)
    if missing or unexpected:
        raise KeyError(f"weights do not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def optim_state(model, optimizer, fsdp: bool) -> dict:
    """{"state": {name: {key: tensor}}, "param_groups": [{..., "params": [names]}]}."""
    if fsdp:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))
    per_group = group_names(model, optimizer)
    order = [n for names in per_group for n in names]
    sd = optimizer.state_dict()
    state = {order[pid]: {k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in st.items()}
             for pid, st in sd["state"].items()}
    groups = [{**{k: v for k, v in raw.items() if k != "params"}, "params": names}
              for names, raw in zip(per_group, sd["param_groups"])]
    return {"state": state, "param_groups": groups}


def load_optim_state(model, optimizer, osd: dict, fsdp: bool) -> None:
    if fsdp:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, osd, options=_options())
        return
    per_group = group_names(model, optimizer)
    order = [n for names in per_group for n in names]
    index = {n: i for i, n in enumerate(order)}
    unknown = set(osd["state"]) - set(order)  # (parameters that never took a step simply have no state)
    if unknown:
        raise KeyError(f"optimizer state names parameters this model lacks: {sorted(unknown)[:5]}")
    state = {index[n]: st for n, st in osd["state"].items()}
    groups = [{**saved, "params": [index[n] for n in names]} for names, saved in zip(per_group, osd["param_groups"])]
    optimizer.load_state_dict({"state": state, "param_groups": groups})

"""Eighteenth session: the fused operators (model.fused_qk_norm_rope, model.fused_swiglu; Triton on CUDA)
with the flex attention backend, on a GPU for the first time. The mixed objective's loss and every
parameter's gradient on interleaved text + image rows (caption -> image and image -> caption), in float32:
flex + fused kernels against SDPA with the dense mask and the unfused layers, same weights and draws.
Then one bf16-autocast step of each, as training runs it. Prints the largest relative gradient error."""
import sys

sys.path.insert(0, ".")
import torch  # noqa: E402

from core.batch_rng import BatchRNG  # noqa: E402
from core.config import ModelConfig  # noqa: E402
from core.model import Model, ModelSpec  # noqa: E402
from modalities.mixed_sequence import MixedLayout, pack_batch  # noqa: E402
from modalities.tokenizers import ByteTokenizer  # noqa: E402
from objectives.mixed import MixedConfig, MixedObjective  # noqa: E402

import core.attention as attention  # noqa: E402

dev = torch.device("cuda")
used = []  # the backend each forward attends with, recorded from attention.prepare
_prepare = attention.prepare


def recording_prepare(*args, **kwargs):
    prepared = _prepare(*args, **kwargs)
    used.append(prepared.backend.name)
    return prepared


attention.prepare = recording_prepare
tok = ByteTokenizer()
spec = ModelSpec(vocab_size=tok.vocab_size, image_channels=1, image_size=32, patch_size=2)


def build(backend: str, fused: bool) -> Model:
    torch.manual_seed(0)
    cfg = ModelConfig(size="tiny", n_layer=2, d_model=256, n_head=4, attn_backend=backend,
                      fused_qk_norm_rope=fused, fused_swiglu=fused)
    m = Model(cfg, spec)
    for p in m.parameters():  # adaLN-zero starts at zero: random weights make every path matter
        torch.nn.init.normal_(p, std=0.05)
    return m.to(dev)


directions = ["c2i"] * 8 + ["i2c"] * 8
caps = [tok.encode(f"a handwritten digit {i % 10}") for i in range(len(directions))]
batch = pack_batch(tok, caps, directions, MixedLayout(24, 16))
batch = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}
batch["images"] = torch.randn(len(directions), 1, 32, 32, device=dev) * 0.5
batch["kind"] = "image_text"
objective = MixedObjective(MixedConfig(M=4), spec)


def loss_and_grads(model, autocast: bool):
    batch["rng"] = BatchRNG(seed=1, step=0, device=dev)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        out = objective(model, batch)
    grads = torch.autograd.grad(out["loss"], list(model.parameters()), allow_unused=True)
    return {k: float(v.detach()) for k, v in out.items() if k.endswith("loss")}, \
        dict(zip([n for n, _ in model.named_parameters()], grads))


reference, fused = build("sdpa", False), build("flex", True)
assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), fused.state_dict().values()))
for autocast in (False, True):
    used.clear()
    out_r, g_r = loss_and_grads(reference, autocast)
    used_r, used[:] = sorted(set(used)), []
    out_f, g_f = loss_and_grads(fused, autocast)
    assert used_r == ["sdpa"] and sorted(set(used)) == ["flex"], (used_r, used)
    worst, worst_name = 0.0, ""
    for name, gr in g_r.items():
        gf = g_f[name]
        if gr is None or gf is None:
            assert gr is None and gf is None, name
            continue
        rel = float((gf - gr).norm() / gr.norm().clamp(min=1e-12))
        if rel > worst:
            worst, worst_name = rel, name
    tag = "bf16 autocast" if autocast else "float32"
    print(f"{tag}: loss {out_r['loss']:.6f} (sdpa, unfused) vs {out_f['loss']:.6f} (flex, fused); "
          f"ar {out_r['ar_loss']:.6f} vs {out_f['ar_loss']:.6f}; imm {out_r['imm_loss']:.3e} vs "
          f"{out_f['imm_loss']:.3e}; largest relative gradient error {worst:.2e} ({worst_name})", flush=True)
    tol = 2e-2 if autocast else 1e-3
    assert abs(out_r["loss"] - out_f["loss"]) <= tol * abs(out_r["loss"]), tag
    assert worst <= (5e-2 if autocast else 1e-3), (tag, worst, worst_name)
print("fused + flex agrees with sdpa + unfused")

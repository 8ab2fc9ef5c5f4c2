"""Seventeenth session, call 5: the compiled decode sampler (samplers/ar_compiled.py) on a GPU for the first
time. Greedy tokens against the eager sampler (fp32, random GPT-2-124M weights, two left-padded prompts),
then the per-token time of both at two contexts (bf16, batch 1)."""
import sys
import time

sys.path.insert(0, ".")
import torch  # noqa: E402

from core.config import ModelConfig  # noqa: E402
from core.model import Model, ModelSpec  # noqa: E402
from samplers.ar import generate  # noqa: E402
from samplers.ar_compiled import generate_compiled  # noqa: E402

torch.manual_seed(0)
model = Model(ModelConfig(size="gpt2-124m"), ModelSpec(vocab_size=50304)).cuda().eval()
prompts = [torch.randint(0, 50304, (200,)).tolist(), torch.randint(0, 50304, (150,)).tolist()]
with torch.no_grad():
    t = time.perf_counter()
    eager = generate(model, prompts, 32, temperature=0)
    t_eager = time.perf_counter() - t
    t = time.perf_counter()
    compiled = generate_compiled(model, prompts, 32, temperature=0)
    t_first = time.perf_counter() - t
    same = [sum(a == b for a, b in zip(e, c)) for e, c in zip(eager, compiled)]
    print(f"fp32 greedy, 2 prompts x 32 new tokens: tokens equal {same} of 32; first prefix differing at",
          [next((i for i, (a, b) in enumerate(zip(e, c)) if a != b), None) for e, c in zip(eager, compiled)],
          f"; eager {t_eager:.2f} s, compiled first call (compiles) {t_first:.1f} s", flush=True)
    model = model.to(torch.bfloat16)
    rows = []
    for ctx in (256, 1024):
        prompt = [torch.randint(0, 50304, (ctx - 32,)).tolist()]
        for name, fn in (("eager", lambda n: generate(model, prompt, n, temperature=0)),
                         ("compiled", lambda n: generate_compiled(model, prompt, n, temperature=0))):
            fn(2)
            times = {}
            for n in (1, 32):
                best = float("inf")
                for _ in range(3):
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    fn(n)
                    torch.cuda.synchronize()
                    best = min(best, time.perf_counter() - t)
                times[n] = best
            ms = 1000 * (times[32] - times[1]) / 31
            rows.append((ctx, name, ms))
            print(f"bf16 batch 1, context {ctx}: {name} {ms:.2f} ms a token", flush=True)
print("| context | eager ms/token | compiled ms/token | eager / compiled |")
print("|---|---|---|---|")
for ctx in (256, 1024):
    e = next(r[2] for r in rows if r[0] == ctx and r[1] == "eager")
    c = next(r[2] for r in rows if r[0] == ctx and r[1] == "compiled")
    print(f"| {ctx} | {e:.2f} | {c:.2f} | {e / c:.2f}x |")

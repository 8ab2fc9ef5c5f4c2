"""Where training steps spend their time: the top device kernels and the top host operators of a
few profiled steps, as markdown tables (``train.profile_steps`` and the benchmarks' ``--profile``)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

ACTIVITIES = [torch.profiler.ProfilerActivity.CPU] + (
    [torch.profiler.ProfilerActivity.CUDA] if torch.cuda.is_available() else [])


def top_table(prof, steps: int, device: bool, rows: int = 15) -> str:
    """The operators (host) or kernels (device) with the most self time, per step and as a share."""
    kind = torch.autograd.DeviceType.CUDA if device else torch.autograd.DeviceType.CPU
    events = [e for e in prof.key_averages() if e.device_type == kind]
    time_of = (lambda e: e.self_device_time_total) if device else (lambda e: e.self_cpu_time_total)
    total = sum(time_of(e) for e in events) or 1.0
    events.sort(key=time_of, reverse=True)
    what = "kernel" if device else "host operator"
    lines = [f"{'device' if device else 'host'} time per step {total / steps / 1000:.2f} ms over {len(events)} {what}s",
             f"| {what} | calls/step | ms/step | share |", "|---|---|---|---|"]
    for e in events[:rows]:
        name = e.key if len(e.key) <= 90 else e.key[:87] + "..."
        lines.append(f"| `{name}` | {e.count / steps:.0f} | {time_of(e) / steps / 1000:.3f} | {time_of(e) / total:.1%} |")
    if device:
        lines += ["", category_table([(e.key, time_of(e)) for e in events], steps, total)]
    return "\n".join(lines)


# kernel-name fragments by what the kernel does (cuBLAS/cuDNN/Triton names on Hopper)
CATEGORIES = (("attention", ("sdpa", "flash", "fmha", "attention")),
              ("matmul", ("nvjet", "gemm", "cutlass", "xmma", "sm90_", "mm_")),
              ("optimizer", ("optimizer", "adam", "multi_tensor")),
              ("fused elementwise / reduction (Triton)", ("triton",)))


def kernel_category(name: str) -> str:
    low = name.lower()
    for label, keys in CATEGORIES:
        if any(k in low for k in keys):
            return label
    return "other"


def category_table(timed: list[tuple[str, float]], steps: int, total: float) -> str:
    """Device time per step by kind of kernel: where two models differ at a glance."""
    sums: dict[str, list[float]] = {}
    for name, us in timed:
        s = sums.setdefault(kernel_category(name), [0.0, 0])
        s[0] += us
        s[1] += 1
    lines = ["| kind of kernel | kernels | ms/step | share |", "|---|---|---|---|"]
    for label, (us, n) in sorted(sums.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"| {label} | {n} | {us / steps / 1000:.3f} | {us / total:.1%} |")
    return "\n".join(lines)


def top_kernels(step: Callable[[], None], steps: int = 3, rows: int = 15) -> str:
    """Run ``step`` ``steps`` times under the profiler (after one untimed call): the device table."""
    step()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=ACTIVITIES) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    return top_table(prof, steps, device=True, rows=rows)


class StepProfiler:
    """Profiles the training steps between ``start()`` and ``stop()``; writes both tables."""

    def __init__(self, path: Path):
        self.path, self.prof, self.steps = path, None, 0

    def start(self) -> None:
        self.prof = torch.profiler.profile(activities=ACTIVITIES)
        self.prof.__enter__()
        self.t0 = time.perf_counter()

    def step(self) -> None:
        self.steps += 1

    def stop(self) -> Path:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - self.t0) / max(self.steps, 1) * 1000
        self.prof.__exit__(None, None, None)
        parts = [f"# Profile of {self.steps} training steps\n\nwall time per step {wall_ms:.2f} ms (under the "
                 "profiler); where the device time per step below is much less, the host is the bottleneck", top_table(self.prof, self.steps, device=False)]
        if torch.cuda.is_available():
            parts.append(top_table(self.prof, self.steps, device=True))
        self.path.write_text("\n\n".join(parts) + "\n")
        return self.path

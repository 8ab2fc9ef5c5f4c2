"""Where a training step spends its GPU time: the top kernels of a few profiled steps, as a table.

Used by the benchmark scripts' ``--profile`` options to explain a throughput gap between two
variants measured in the same run."""
from __future__ import annotations

from typing import Callable

import torch


def top_kernels(step: Callable[[], None], steps: int = 3, rows: int = 15) -> str:
    """Run ``step`` ``steps`` times under the profiler (after one untimed call) and return the
    kernels with the most device time, with their share of the total."""
    step()
    torch.cuda.synchronize()
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    total = sum(e.self_device_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_device_time_total, reverse=True)
    lines = [f"device time per step {total / steps / 1000:.2f} ms over {len(events)} kernels",
             "| kernel | calls/step | ms/step | share |", "|---|---|---|---|"]
    for e in events[:rows]:
        name = e.key if len(e.key) <= 90 else e.key[:87] + "..."
        lines.append(f"| `{name}` | {e.count / steps:.0f} | {e.self_device_time_total / steps / 1000:.3f} | "
                     f"{e.self_device_time_total / total:.1%} |")
    return "\n".join(lines)

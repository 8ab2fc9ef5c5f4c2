"""The randomness of one micro-batch (noise, times, label dropout) as a pure function of
(seed, step, micro). Every draw is made for the global batch and sliced to this rank, so a
data-parallel run draws exactly what a single process with the same global batch would, and a
resumed run draws what the uninterrupted one did.

The data's draws (which examples make the batch) come from their own stream: a generator seeded like
the objective's would repeat its random words, so an image's index and its group's times would be
functions of the same bits."""
from __future__ import annotations

import torch

OBJECTIVE_STREAM = 0
DATA_STREAM = 1


class BatchRNG:
    def __init__(self, seed: int, step: int, micro: int = 0, rank: int = 0, world: int = 1, device="cpu",
                 stream: int = OBJECTIVE_STREAM):
        # ints only in the hashed tuple: Python salts the hash of strings per process
        key = (seed, step, micro) if stream == OBJECTIVE_STREAM else (seed, step, micro, stream)
        s = hash(key) & 0x7FFF_FFFF_FFFF
        self.rank, self.world = rank, world
        self.device = torch.device(device)
        self.cpu = torch.Generator().manual_seed(s)
        self.dev = torch.Generator(device=self.device).manual_seed(s) if self.device.type != "cpu" else self.cpu

    @classmethod
    def from_global(cls, device="cpu") -> "BatchRNG":
        """For direct calls outside the trainer: seeded from torch's global generator."""
        return cls(int(torch.randint(0, 2 ** 62, (1,))), 0, 0, device=device)

    def _slice(self, x: torch.Tensor, n_local: int, dim: int = 0) -> torch.Tensor:
        return x.narrow(dim, self.rank * n_local, n_local)

    def uniform(self, n_local: int, rows: int | None = None, stratified: bool = False) -> torch.Tensor:
        """float64 U[0, 1) on the CPU: (n_local,) or (rows, n_local). ``stratified``: each row of the global
        draw puts one value in each of its equal strata of [0, 1) (see stratify)."""
        shape = (self.world * n_local,) if rows is None else (rows, self.world * n_local)
        return self._slice(uniform64(shape, self.cpu, stratified), n_local, dim=-1 if rows else 0)

    def indices(self, high: int, n_local: int) -> torch.Tensor:
        """This rank's n_local of a global draw of integers in [0, high) (the data of a batch)."""
        return self._slice(torch.randint(0, high, (self.world * n_local,), generator=self.cpu), n_local)

    def normal64(self, n_local: int) -> torch.Tensor:
        return self._slice(torch.randn(self.world * n_local, dtype=torch.float64, generator=self.cpu), n_local)

    def normal_like(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like x (its first dim is this rank's batch)."""
        gen = self.dev if x.device.type != "cpu" else self.cpu
        full = torch.randn((self.world * x.shape[0], *x.shape[1:]), generator=gen, device=x.device, dtype=x.dtype)
        return self._slice(full, x.shape[0])

    def bernoulli(self, n_local: int, p: float, device) -> torch.Tensor:
        return to_device(self.uniform(n_local) < p, device)


def uniform64(shape, generator: torch.Generator | None, stratified: bool = False) -> torch.Tensor:
    """float64 U[0, 1) of ``shape`` from ``generator``; ``stratified``: one value per stratum of each row
    (stratify), with the strata's order drawn after the values."""
    u = torch.rand(shape, dtype=torch.float64, generator=generator)
    return stratify(u, torch.rand(shape, dtype=torch.float64, generator=generator)) if stratified else u


def stratify(u: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """U[0, 1) rows of n -> rows with one value in each stratum [i/n, (i+1)/n), still U[0, 1) each. The
    strata's order in a row is the ranks of ``order``'s row, drawn independently per row, so two rows pair
    their strata at random (a Latin hypercube): n draws cover [0, 1) evenly where plain draws leave gaps."""
    return (order.argsort(dim=-1).to(u.dtype) + u) / u.shape[-1]


def to_device(t: torch.Tensor, device) -> torch.Tensor:
    """CPU -> device through pinned memory without blocking the host (a pageable copy would wait
    for the GPU to drain its queue)."""
    device = torch.device(device)
    # inside a compiled loss (train.compile_mode=full) the copy is traced: pinning has no fake-tensor rule
    if device.type == "cuda" and t.device.type == "cpu" and not torch.compiler.is_compiling():
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)

import os
import subprocess
import sys
from pathlib import Path

import torch

from core.batch_rng import DATA_STREAM, BatchRNG

ROOT = Path(__file__).resolve().parents[2]


def test_data_and_objective_streams_are_different_generators():
    objective, data = BatchRNG(3, 17, 1), BatchRNG(3, 17, 1, stream=DATA_STREAM)
    assert objective.cpu.initial_seed() != data.cpu.initial_seed()
    assert not torch.equal(objective.uniform(64), data.uniform(64))
    # and the same stream draws the same again: the difference above is the stream's, not chance
    assert torch.equal(BatchRNG(3, 17, 1).uniform(64), BatchRNG(3, 17, 1).uniform(64))


def test_objective_stream_keeps_its_seed():
    # the objective's draws of runs before the data stream existed are reproduced exactly
    assert BatchRNG(3, 17, 1).cpu.initial_seed() == hash((3, 17, 1)) & 0x7FFF_FFFF_FFFF


def test_rank_slices_of_the_data_stream_make_the_global_draw():
    full = BatchRNG(5, 2, 0, stream=DATA_STREAM).indices(1000, 8)
    parts = [BatchRNG(5, 2, 0, rank, 2, stream=DATA_STREAM).indices(1000, 4) for rank in range(2)]
    assert torch.equal(torch.cat(parts), full)


def test_draws_do_not_depend_on_the_process_hash_salt():
    code = ("from core.batch_rng import DATA_STREAM, BatchRNG; "
            "print(BatchRNG(3, 17, 1, stream=DATA_STREAM).indices(10**6, 4).tolist(), "
            "BatchRNG(3, 17, 1).uniform(2).tolist())")
    outs = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": salt}).stdout for salt in ("1", "2")}
    assert len(outs) == 1, outs


def test_stratified_rows_put_one_draw_in_each_stratum_and_pair_strata_at_random():
    n = 64
    u = BatchRNG(5, 2, 0).uniform(n, rows=2, stratified=True)
    strata = (u * n).floor().long()
    for row in strata:
        assert sorted(row.tolist()) == list(range(n))
    assert not torch.equal(strata[0], strata[1])  # each row orders its strata independently
    plain = (BatchRNG(5, 2, 0).uniform(n, rows=2) * n).floor().long()
    assert len(set(plain[0].tolist())) < n  # independent draws leave some strata empty
    # the global draw is stratified, and each rank takes its slice of it
    parts = [BatchRNG(5, 2, 0, rank, 2).uniform(n // 2, rows=2, stratified=True) for rank in range(2)]
    assert torch.equal(torch.cat(parts, dim=1), u)

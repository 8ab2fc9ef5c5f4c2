"""Batches whose rows come in groups of m images of one class (IMM's objective.label_groups).

IMM compares the M particles of a group as two sets (a kernel MMD). With labels drawn per image, a
group holds M classes and its MMD compares mixtures; with one class a group, it compares samples of
one class-conditional distribution, the distribution each conditional jump has to match."""
from __future__ import annotations

import torch

from core.batch_rng import BatchRNG
from modalities.text_data import DataError


class LabelGroupIndices:
    def __init__(self, labels: torch.Tensor | None, m: int):
        if labels is None:
            raise DataError("objective.label_groups needs labelled images (an .npz with label arrays, a folder with "
                            "class subfolders, or the embedded digits); set objective.label_groups=false")
        labels = labels.cpu()
        self.m, self.labels = m, labels
        self.order = torch.argsort(labels, stable=True)  # image indices sorted by class
        self.counts = torch.bincount(labels)
        self.starts = self.counts.cumsum(0) - self.counts

    def indices(self, rng: BatchRNG, batch_size: int) -> torch.Tensor:
        """This rank's batch_size indices: per group, a uniformly drawn image fixes the class (so classes
        keep their frequencies), then m images are drawn uniformly from that class, with replacement."""
        groups = batch_size // self.m
        cls = self.labels[rng.indices(len(self.labels), groups)]
        u = rng.uniform(batch_size).view(groups, self.m)
        count = self.counts[cls].unsqueeze(1)
        within = (u * count).long().clamp(max=count - 1)
        return self.order[self.starts[cls].unsqueeze(1) + within].flatten()

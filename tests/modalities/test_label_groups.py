"""objective.label_groups: batches in groups of M images of one class, drawn without bias."""
import pytest
import torch

from core.batch_rng import BatchRNG
from modalities.label_groups import LabelGroupIndices
from modalities.text_data import DataError

# unbalanced classes: 0 holds half the images, 3 a single one
LABELS = torch.tensor([0] * 50 + [1] * 30 + [2] * 19 + [3])


def draw(steps: int, batch: int = 32, m: int = 4, world: int = 1, rank: int = 0) -> torch.Tensor:
    groups = LabelGroupIndices(LABELS, m)
    return torch.stack([groups.indices(BatchRNG(0, step, 0, rank, world), batch) for step in range(steps)])


def test_each_group_of_m_shares_one_label():
    labels = LABELS[draw(50, m=4)].view(-1, 4)
    assert (labels == labels[:, :1]).all()
    mixed = LABELS[BatchRNG(0, 0, 0).indices(len(LABELS), 32)].view(-1, 4)
    assert not (mixed == mixed[:, :1]).all()  # the plain draw does mix classes: the check above can fail


def test_classes_keep_their_frequencies_and_every_image_is_drawn():
    idx = draw(400)  # 12,800 images in 3,200 groups
    share = torch.bincount(LABELS[idx].flatten(), minlength=4).double() / idx.numel()
    expected = torch.bincount(LABELS).double() / len(LABELS)
    assert torch.allclose(share, expected, atol=0.03), (share, expected)
    seen = torch.bincount(idx.flatten(), minlength=len(LABELS))
    assert (seen > 0).all()  # the class's images are drawn uniformly: none left out, the last one included
    in_class_0 = seen[:50].double()
    assert in_class_0.std() / in_class_0.mean() < 0.2


def test_draws_depend_on_the_step_only_and_ranks_split_the_global_batch():
    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(2)[1], draw(2)[0])
    whole = draw(2, batch=32)
    halves = torch.cat([draw(2, batch=16, world=2, rank=r) for r in (0, 1)], dim=1)
    assert torch.equal(whole, halves)


def test_unlabelled_data_is_refused():
    with pytest.raises(DataError, match="needs labelled images"):
        LabelGroupIndices(None, 4)


def test_image_task_draws_label_groups_when_asked(tmp_path):
    from core.config import build_config
    from modalities.image_task import ImageTask
    from objectives.imm import IMMConfig

    cfg = build_config("imm", IMMConfig, [], ["objective.label_groups=true", "objective.M=4"])
    labels = ImageTask(cfg, tmp_path, resuming=False).train_batch(step=0, micro=0, batch_size=64)["labels"].view(-1, 4)
    assert (labels == labels[:, :1]).all() and len(labels.unique()) > 1

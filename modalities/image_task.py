"""The image task: datasets scaled to std sigma_d, class-conditional batches, sample-based evaluation."""
from __future__ import annotations

from pathlib import Path

import torch

from core.batch_rng import DATA_STREAM, BatchRNG, to_device
from core.model import ModelSpec
from modalities.image_data import load_image_sets
from modalities.image_eval import ImageEvaluator, balanced_labels, save_grid
from modalities.label_groups import LabelGroupIndices
from modalities.task import TASKS, Task
from modalities.text_data import DataError


DEVICE_DATA_BYTES = 4 * 2 ** 30  # larger training sets stay in host memory


@TASKS.register("image")
class ImageTask(Task):
    def __init__(self, cfg, run_dir: Path, resuming: bool, rank: int = 0, world: int = 1):
        self.cfg, self.rank, self.world = cfg, rank, world
        d = cfg.data
        self.train, self.test = load_image_sets(d.path, d.image_size, d.image_pad_value)
        size = self.train.images.shape[-1]
        if size % d.patch_size:
            raise DataError(f"image size {size} is not divisible by data.patch_size={d.patch_size}; "
                            "set data.image_size (e.g. 32 for MNIST) or another patch size")
        sigma_d = getattr(cfg.objective, "sigma_d", 0.5)
        spec_path = Path(run_dir) / "spec.json"
        if resuming and spec_path.is_file():  # keep the scale the run started with
            self.scale = ModelSpec.from_json(spec_path.read_text()).image_scale
        else:
            self.scale = float(sigma_d / self.train.images.std())
        self.tokens_per_sample = (size // d.patch_size) ** 2
        self._evaluator = None
        self._images = self._labels = None  # the scaled training set that batches are drawn from
        self._label_groups = None
        if getattr(cfg.objective, "label_groups", False):
            self._label_groups = LabelGroupIndices(self.train.labels, cfg.objective.M)

    def to(self, device) -> None:
        """The scaled training images on ``device`` when they fit, so a step's batch is a gather on
        the GPU instead of a host-side gather, multiply and copy (the loop is host-bound there).
        Scaling once and gathering gives the same values as gathering and scaling each batch."""
        device = torch.device(device)
        images = self.train.images * self.scale
        if images.numel() * images.element_size() > DEVICE_DATA_BYTES:
            device = torch.device("cpu")
        self._images = images.to(device)
        self._labels = None if self.train.labels is None else self.train.labels.to(device)

    def spec(self) -> ModelSpec:
        t = self.train
        return ModelSpec(image_channels=t.images.shape[1], image_size=t.images.shape[-1], patch_size=self.cfg.data.patch_size,
                         num_classes=t.num_classes, image_scale=self.scale)

    def describe(self) -> str:
        t = self.train
        return (f"images: {len(t)} train / {len(self.test)} test, {tuple(t.images.shape[1:])}, "
                f"{t.num_classes} classes, scale x{self.scale:.3f} to std {self.scale * float(t.images.std()):.2f}")

    def train_batch(self, step: int, micro: int, batch_size: int) -> dict:
        # this rank's slice of a global batch drawn from (seed, step, micro)
        rng = BatchRNG(self.cfg.train.seed, step, micro, self.rank, self.world, stream=DATA_STREAM)
        if self._label_groups is not None:
            idx = self._label_groups.indices(rng, batch_size)
        else:
            idx = rng.indices(len(self.train), batch_size)
        if self._images is None:
            self.to("cpu")
        idx = to_device(idx, self._images.device)
        out = {"images": self._images[idx]}
        if self._labels is not None:
            out["labels"] = self._labels[idx]
        return out

    def evaluator(self, device) -> ImageEvaluator:
        if self._evaluator is None:
            self._evaluator = ImageEvaluator(self.train, self.test, device, self.cfg.sample.inception_path)
        return self._evaluator

    def _sampler_name(self, objective) -> str:
        return self.cfg.sample.sampler or objective.default_sampler

    @torch.no_grad()
    def evaluate(self, model, objective, ctx) -> dict:
        s = self.cfg.sample
        if s.eval_images <= 0 or not ctx.is_main:
            return {}
        ev = self.evaluator(ctx.device)
        with ctx.autocast():
            gen = ev.generate(model, objective, self._sampler_name(objective), s.steps, s.guidance, s.eval_images, s.seed)
        scores = ev.score(gen["images"], gen["labels"], kid_subsets=10)
        return {f"eval/{k}": v for k, v in scores.items()} | {"eval/nfe": gen["nfe"]}

    @torch.no_grad()
    def write_samples(self, model, objective, step: int, out_dir: Path, ctx) -> Path:
        from modalities.image_data import to_uint8
        from samplers import get_sampler

        s = self.cfg.sample
        n = 10 * max(1, s.num_samples)
        labels = balanced_labels(n, model.spec.num_classes)
        labels = None if labels is None else labels.view(-1, 10).t().reshape(-1).to(ctx.device)  # one class per row
        g = torch.Generator(device=ctx.device).manual_seed(s.seed)
        with ctx.autocast():
            res = get_sampler(self._sampler_name(objective))(model, objective, labels, n, s.steps, s.guidance, generator=g)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"step_{step:07d}.png"
        save_grid(to_uint8(res.images / model.spec.image_scale).cpu(), path, nrow=max(1, s.num_samples))
        return path


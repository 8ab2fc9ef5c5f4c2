"""Generate class-conditional samples and score them: class accuracy, FID and KID.

Features come from the project's own classifier of the dataset (always) and, when a TorchScript
Inception file is given, from Inception-v3 (the standard FID). Samples are quantised to uint8 first
and cropped back to the dataset's native size, exactly as real images are.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from core.fid import fid, kid
from modalities.image_classifier import get_classifier, predict_and_features
from modalities.image_data import ImageSet, crop_to, native_uint8, to_uint8
from samplers import get_sampler
from samplers.image_common import check_compatible, check_options


def balanced_labels(n: int, num_classes: int) -> torch.Tensor | None:
    return torch.arange(n) % num_classes if num_classes else None


class ImageEvaluator:
    def __init__(self, train: ImageSet, test: ImageSet, device, inception_path: str = ""):
        self.train, self.test, self.device = train, test, torch.device(device)
        self.classifier = None
        if train.labels is not None:
            self.classifier = get_classifier(train.images, train.labels, train.num_classes, self.device)
        self._clf_ref = None
        self.inception = None
        self._inc_ref = None
        if inception_path:
            from modalities.image_features import InceptionFeatures

            self.inception = InceptionFeatures(inception_path, self.device)

    def classifier_ref(self):
        if self._clf_ref is None and self.classifier is not None:
            self._clf_ref = predict_and_features(self.classifier, self.test.images)[1]
        return self._clf_ref

    def test_uint8(self) -> torch.Tensor:
        """The test images as they are scored: native size, uint8."""
        return native_uint8(self.test)

    def inception_ref(self):
        if self._inc_ref is None and self.inception is not None:
            self._inc_ref = self.inception(self.test_uint8())
        return self._inc_ref

    @torch.no_grad()
    def generate(self, model, objective, sampler_name: str, steps: int, guidance: float, n: int, seed: int = 0,
                 batch: int = 1000, objective_name: str = "", captions=None, **sampler_options) -> dict:
        """-> images (uint8, padded size), labels, nfe, seconds per image.

        ``captions`` (for mixed text-image models): (tokenizer, label -> caption text); the classes are
        then named in captions instead of given as labels. ``sampler_options`` (e.g. an IMM sampler's
        ``spacing``) go to the sampler."""
        sampler = get_sampler(sampler_name)
        check_compatible(sampler_name, sampler, objective_name or objective.cfg.name)
        check_options(sampler_name, sampler, sampler_options)
        if captions is not None:
            tok, caption_of = captions
            labels = balanced_labels(n, 10)
            base = sampler

            def sampler(model, objective, lab, n, steps, guidance, generator, **options):  # noqa: F811
                ids = [tok.encode(caption_of(int(c))) for c in lab]
                return base(model, objective, ids, tok, steps, guidance, generator=generator, **options)
        else:
            labels = balanced_labels(n, model.spec.num_classes)
        g = torch.Generator(device=self.device).manual_seed(seed)
        out, nfe = [], 0
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            lab = None if labels is None else labels[i:i + batch].to(self.device)
            res = sampler(model, objective, lab, min(batch, n - i), steps, guidance, generator=g, **sampler_options)
            out.append(to_uint8(res.images / model.spec.image_scale).cpu())
            nfe = res.nfe
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return {"images": torch.cat(out), "labels": labels, "nfe": nfe, "seconds_per_image": (time.perf_counter() - t0) / n}

    def score(self, images_uint8: torch.Tensor, labels: torch.Tensor | None, kid_subsets: int = 50,
              inception_only: bool = False) -> dict:
        out: dict = {}
        if self.classifier is not None and not inception_only:
            x = images_uint8.float() / 127.5 - 1
            preds, feats = predict_and_features(self.classifier, x)
            if labels is not None:
                out["class_acc"] = float((preds == labels).float().mean())
            ref = self.classifier_ref()
            out["fid_clf"] = fid(feats, ref, device=self.device)
            out["kid_clf"] = kid(feats, ref, subsets=kid_subsets, device=self.device)
        if self.inception is not None:
            feats = self.inception(crop_to(images_uint8, self.test.native_size))
            ref = self.inception_ref()
            out["fid"] = fid(feats, ref, device=self.device)
            out["kid"] = kid(feats, ref, subsets=kid_subsets, device=self.device)
        return out


def save_grid(images_uint8: torch.Tensor, path, nrow: int = 10) -> None:
    """(N, C, H, W) uint8 -> one PNG grid with a 1-pixel border."""
    from PIL import Image

    n, c, h, w = images_uint8.shape
    rows = (n + nrow - 1) // nrow
    grid = np.zeros((rows * (h + 1) + 1, nrow * (w + 1) + 1, c), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + col * (w + 1):1 + col * (w + 1) + w] = \
            images_uint8[i].permute(1, 2, 0).numpy()
    img = Image.fromarray(grid[..., 0] if c == 1 else grid)
    scale = max(1, 256 // (h + 1) // max(1, rows // 4))
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)

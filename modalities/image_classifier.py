"""A small CNN trained on the dataset itself: class accuracy of samples, and features for FID when
no Inception network is given. Trained once per dataset and cached (safetensors) by fingerprint."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_model, save_model

VERSION = 1


class SmallCNN(nn.Module):
    def __init__(self, channels: int, num_classes: int, width: int = 64, feat: int = 128):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(1),
        )
        self.fc = nn.Linear(2 * width, feat)
        self.out = nn.Linear(feat, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.fc(self.convs(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


def cache_dir() -> Path:
    return Path(os.environ.get("ONEBACKBONE_CACHE", Path.home() / ".cache" / "onebackbone"))


def fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.sha1(f"v{VERSION}-{tuple(images.shape)}".encode())
    h.update(images.numpy().tobytes())
    h.update(labels.numpy().tobytes())
    return h.hexdigest()[:16]


def train_classifier(images, labels, num_classes, device, epochs: int | None = None) -> SmallCNN:
    """Adam on small random shifts of the training set; deterministic under its own seed, and leaves
    the caller's RNG and grad mode alone."""
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(0)
        return _train(images, labels, num_classes, device, epochs)


def _train(images, labels, num_classes, device, epochs):
    g = torch.Generator().manual_seed(0)
    model = SmallCNN(images.shape[1], num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    n = len(images)
    epochs = epochs or (30 if n < 5000 else 4)
    steps = epochs * max(1, n // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    x_all, y_all = images.to(device), labels.to(device)
    for _ in range(steps):
        idx = torch.randint(0, n, (128,), generator=g).to(device)
        x = x_all[idx]
        shift = torch.randint(-1, 2, (2,), generator=g).tolist()
        x = torch.roll(x, shifts=shift, dims=(2, 3))
        loss = F.cross_entropy(model(x), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def get_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, device) -> SmallCNN:
    """The cached classifier of this exact training set, training it first if needed."""
    path = cache_dir() / "classifiers" / f"{fingerprint(images, labels)}.safetensors"
    model = SmallCNN(images.shape[1], num_classes)
    if path.is_file():
        try:
            load_model(model, str(path))
            return model.to(device).eval()
        except Exception:  # a damaged cache entry is retrained, never trusted
            path.unlink(missing_ok=True)
    model = train_classifier(images, labels, num_classes, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_model(model.cpu(), str(tmp))
    os.replace(tmp, path)
    return model.to(device).eval()


@torch.no_grad()
def predict_and_features(model: SmallCNN, images: torch.Tensor, batch: int = 1000):
    device = next(model.parameters()).device
    preds, feats = [], []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(device).float()
        f = model.features(x)
        preds.append(model.out(f).argmax(-1).cpu())
        feats.append(f.cpu())
    return torch.cat(preds), torch.cat(feats)

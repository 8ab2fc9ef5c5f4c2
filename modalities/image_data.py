"""Image datasets as tensors in [-1, 1]: the embedded 8x8 digits, .npz arrays, or a folder of images.

Every source gives a training and a test set of (N, C, H, W) float32 images with optional integer
labels. ``prepare`` brings them to the configured size: padding with background when growing
(e.g. MNIST 28 -> 32 for patch sizes that divide 32), resizing when shrinking.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from modalities.text_data import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


@dataclass
class ImageSet:
    images: torch.Tensor  # (N, C, H, W) float32 in [-1, 1]
    labels: torch.Tensor | None  # (N,) int64
    num_classes: int
    native_size: int  # side length before padding (samples are cropped back to it for FID)

    def __len__(self) -> int:
        return len(self.images)

    def head(self, n: int) -> "ImageSet":
        """The first n images (and their labels, if any)."""
        return ImageSet(self.images[:n], None if self.labels is None else self.labels[:n], self.num_classes,
                        self.native_size)


def _from_uint8(arr: np.ndarray, name: str) -> torch.Tensor:
    if arr.dtype != np.uint8:
        raise DataError(f"{name} must hold uint8 pixels (0..255), got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.shape[2] != arr.shape[3]:
        raise DataError(f"{name} must have shape (N, H, W), (N, H, W, C) or (N, C, H, W) with square images "
                        f"and 1 or 3 channels; got {arr.shape}")
    return torch.from_numpy(arr.astype(np.float32) / 127.5 - 1.0)


def _labels(arr: np.ndarray, n: int, name: str) -> torch.Tensor:
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise DataError(f"{name} must have shape ({n},) to match the images, got {arr.shape}")
    if arr.min() < 0:
        raise DataError(f"{name} has negative labels")
    return torch.from_numpy(arr.astype(np.int64))


def load_digits() -> tuple[ImageSet, ImageSet]:
    """scikit-learn's 1,797 8x8 digits (values 0..16): the first 1,500 train, the rest test."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 8.0 - 1.0)[:, None]
    y = torch.from_numpy(d.target.astype(np.int64))
    return ImageSet(x[:1500], y[:1500], 10, 8), ImageSet(x[1500:], y[1500:], 10, 8)


def load_npz(path: str) -> tuple[ImageSet, ImageSet]:
    """Keys x_train/y_train/x_test/y_test (MNIST layout), or images/labels (last 10% become the test set)."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable .npz file ({e})") from None
    keys = set(z.files)
    if {"x_train", "x_test"} <= keys:
        parts = [("x_train", "y_train"), ("x_test", "y_test")]
    elif "images" in keys:
        parts = [("images", "labels")]
    else:
        raise DataError(f"{path} has keys {sorted(keys)}; expected x_train/y_train/x_test/y_test or images/labels")
    sets = []
    for xk, yk in parts:
        x = _from_uint8(z[xk], f"{path}:{xk}")
        y = _labels(z[yk], len(x), f"{path}:{yk}") if yk in keys else None
        sets.append((x, y))
    if len(sets) == 1:
        x, y = sets[0]
        cut = int(len(x) * 0.9)
        sets = [(x[:cut], None if y is None else y[:cut]), (x[cut:], None if y is None else y[cut:])]
    ys = [y for _, y in sets if y is not None]
    n_cls = int(max(int(y.max()) for y in ys)) + 1 if ys else 0
    size = sets[0][0].shape[-1]
    return tuple(ImageSet(x, y, n_cls, size) for x, y in sets)  # type: ignore[return-value]


def load_folder(path: str, image_size: int) -> tuple[ImageSet, ImageSet]:
    """Images under ``path``; subfolder names become class labels when there are subfolders."""
    from PIL import Image

    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {root}")
    classes = sorted({p.parent.relative_to(root).as_posix() for p in files} - {"."})
    arrays, sizes = [], set()
    for p in files:
        try:
            with Image.open(p) as im:
                im = im.convert("L") if im.mode in ("L", "1", "P", "LA", "I;16") else im.convert("RGB")
                sizes.add(im.size)
                if image_size:
                    im = im.resize((image_size, image_size), Image.BILINEAR)
                arrays.append(np.asarray(im))
        except OSError as e:
            raise DataError(f"cannot read image {p}: {e}") from None
    if len(sizes) > 1 and not image_size:
        raise DataError(f"images under {root} have mixed sizes ({', '.join(f'{w}x{h}' for w, h in sorted(sizes)[:4])}); "
                        "set data.image_size to resize them to one size")
    if len({a.ndim for a in arrays}) > 1:
        raise DataError(f"images under {root} mix grayscale and colour; convert them to one mode")
    x = _from_uint8(np.stack(arrays), str(root))
    if x.shape[-1] != x.shape[-2]:
        raise DataError(f"images under {root} are not square; set data.image_size to resize them")
    y = torch.tensor([classes.index(p.parent.relative_to(root).as_posix()) for p in files]) if classes else None
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    cut = max(1, int(len(x) * 0.9))
    tr, te = perm[:cut], perm[cut:] if len(x) > 1 else perm[:1]
    sel = (lambda t, i: None if t is None else t[i])
    return ImageSet(x[tr], sel(y, tr), len(classes), x.shape[-1]), ImageSet(x[te], sel(y, te), len(classes), x.shape[-1])


def prepare(ds: ImageSet, size: int, pad_value: float) -> ImageSet:
    """Pad (growing) or resize (shrinking) to size x size; 0 keeps the native size."""
    x = ds.images
    cur = x.shape[-1]
    if size and size > cur:
        lo = (size - cur) // 2
        x = F.pad(x, (lo, size - cur - lo, lo, size - cur - lo), value=pad_value)
    elif size and size < cur:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return ImageSet(x, ds.labels, ds.num_classes, size)
    return ImageSet(x, ds.labels, ds.num_classes, ds.native_size)


def load_image_sets(path: str, image_size: int, pad_value: float = -1.0) -> tuple[ImageSet, ImageSet]:
    if not path:
        train, test = load_digits()
    elif path.endswith(".npz"):
        if not Path(path).is_file():
            raise DataError(f"{path} does not exist")
        train, test = load_npz(path)
    elif Path(path).is_dir():
        train, test = load_folder(path, image_size)
    else:
        raise DataError(f"image data {path!r} is neither an .npz file nor a folder of images")
    return prepare(train, image_size, pad_value), prepare(test, image_size, pad_value)


def crop_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Central size x size crop (undoes the padding of ``prepare``)."""
    cur = images.shape[-1]
    if size >= cur:
        return images
    lo = (cur - size) // 2
    return images[..., lo:lo + size, lo:lo + size]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 with round((x + 1) * 127.5)."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def native_uint8(images: ImageSet) -> torch.Tensor:
    """A set's images as they are scored and compared: cropped to their native size, uint8."""
    return to_uint8(crop_to(images.images, images.native_size))

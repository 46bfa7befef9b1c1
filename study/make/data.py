"""Datasets the study can train and evaluate on without a network, and loaders with a fixed order.

``digits`` is scikit-learn's bundled copy of the UCI handwritten digits (1,797 real 8x8 images,
10 classes; no download). ``image_folder`` reads an ImageNet-style folder tree (e.g. ImageNet
val) when one is available locally. ``loaders`` builds DataLoaders whose shuffle order is fixed
by a seeded ``torch.Generator``, so two training runs see the same batches in the same order.
``random_shift`` is the one augmentation: a random translation with zero fill, drawn from a
generator the caller seeds (``study.make.train`` re-seeds it every run).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "digits", "image_folder", "loaders", "random_shift"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_digits_args(image_size: int, channels: int, val_fraction: float) -> None:
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"`image_size` must be an integer >= 8; got {image_size!r}")
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"`channels` must be a positive integer; got {channels!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"`val_fraction` must be in (0, 1); got {val_fraction!r}")


def digits(
    image_size: int = 8, channels: int = 3, seed: int = 0, val_fraction: float = 0.2
) -> tuple[TensorDataset, TensorDataset]:
    """Scikit-learn's bundled handwritten digits as image tensors, split train/validation.

    Pixels (0..16) are scaled to [0, 1] and standardised with the training split's mean and
    standard deviation, upsampled with bilinear interpolation to ``image_size`` and repeated to
    ``channels``. The split is stratified by class and fixed by ``seed``.

    Args:
        image_size: Side of the square images, >= 8 (8 keeps the original resolution).
        channels: Number of identical channels (3 for ImageNet-style models).
        seed: Seed of the stratified split.
        val_fraction: Fraction of the 1,797 images held out for validation, in (0, 1).

    Returns:
        ``(train, val)`` TensorDatasets of ``(image float32 [C, S, S], label int64)``.

    Raises:
        ValueError: If an argument is out of range.

    Example:
        >>> train, val = digits(image_size=16, channels=3)
        >>> len(train) + len(val), tuple(train[0][0].shape)
        (1797, (3, 16, 16))
    """
    _check_digits_args(image_size, channels, val_fraction)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32) / 16.0  # [N, 8, 8]
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)  # [N]
    train_idx, val_idx = train_test_split(
        torch.arange(len(labels)).numpy(),
        test_size=val_fraction,
        stratify=labels.numpy(),
        random_state=seed,
    )
    train_idx, val_idx = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
    mean, std = images[train_idx].mean(), images[train_idx].std()
    images = (images - mean) / std
    images = images.unsqueeze(1)  # [N, 1, 8, 8]
    if image_size != 8:
        images = F.interpolate(
            images, size=(image_size, image_size), mode="bilinear", align_corners=False
        )
    images = images.repeat(1, channels, 1, 1).contiguous()  # [N, C, S, S]
    return (
        TensorDataset(images[train_idx], labels[train_idx]),
        TensorDataset(images[val_idx], labels[val_idx]),
    )


def image_folder(path: str | Path, image_size: int = 224, resize: int | None = None) -> Dataset:
    """An ImageFolder (one sub-folder per class, e.g. ImageNet val) with standard eval transforms.

    Transforms: resize the short side to ``resize`` (default ``round(image_size / 0.875)``), center
    crop ``image_size``, to tensor, normalise with the ImageNet mean and standard deviation.

    Args:
        path: Root folder holding one sub-folder of images per class.
        image_size: Side of the center crop.
        resize: Short side after resizing; None for ``round(image_size / 0.875)``.

    Returns:
        A ``torchvision.datasets.ImageFolder``.

    Raises:
        FileNotFoundError: If ``path`` does not exist or holds no class sub-folders.
        ValueError: If ``image_size`` is not a positive integer.

    Example:
        >>> ds = image_folder("/data/imagenet/val", image_size=224)  # doctest: +SKIP
    """
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"`image_size` must be a positive integer; got {image_size!r}")
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
    if not any(child.is_dir() for child in root.iterdir()):
        raise FileNotFoundError(
            f"image folder {str(root)!r} has no class sub-folders "
            "(expected one folder of images per class, as in ImageNet val)"
        )
    from torchvision import datasets, transforms

    transform = transforms.Compose(
        [
            transforms.Resize(resize or round(image_size / 0.875)),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    return datasets.ImageFolder(str(root), transform=transform)


def loaders(
    train_ds: Dataset, val_ds: Dataset, batch_size: int = 64, seed: int = 0, num_workers: int = 0
) -> tuple[DataLoader, DataLoader]:
    """Training loader shuffled by a seeded generator, and an unshuffled validation loader.

    ``study.make.train.train`` re-seeds the training loader's generator at the start of every run,
    so one loader reused for several runs gives each the same batch order.

    Args:
        train_ds: Training dataset.
        val_ds: Validation dataset.
        batch_size: Batch size of both loaders.
        seed: Seed of the shuffle generator.
        num_workers: DataLoader worker processes (0 = load in the main process).

    Returns:
        ``(train_loader, val_loader)``.

    Raises:
        ValueError: If ``batch_size`` is not a positive integer.

    Example:
        >>> train, val = digits(image_size=8)
        >>> tl, vl = loaders(train, val, batch_size=32, seed=0)
        >>> len(tl)
        45
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}")
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        train_ds, batch_size=batch_size, shuffle=True, generator=generator, num_workers=num_workers
    )
    val_loader = DataLoader(val_ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return train_loader, val_loader


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by its own random offset, filling what the content left with zeros.

    Offsets ``(dy, dx)`` are drawn uniformly from ``[-max_shift, max_shift]`` (both ends
    included), one pair per image, from ``generator``: the same generator state gives the same
    shifts. ``out[..., y, x] = images[..., y - dy, x - dx]`` where that is inside the image, else
    0 (no wrap-around, unlike ``torch.roll``). Note that 0 is the standardised mean pixel, not
    the background of :func:`digits`.

    Args:
        images: A batch ``[N, C, H, W]``.
        max_shift: Largest shift in pixels along each axis, >= 0 (0 returns ``images`` itself).
        generator: CPU generator the offsets are drawn from (advanced by ``2 * N`` draws).

    Returns:
        A new tensor shaped like ``images`` (or ``images`` when ``max_shift`` is 0).

    Raises:
        ValueError: If ``max_shift`` is not an integer >= 0 or ``images`` is not 4-D.

    Example:
        >>> x = torch.ones(2, 1, 4, 4)
        >>> y = random_shift(x, 1, torch.Generator().manual_seed(0))
        >>> tuple(y.shape), bool((y == 0).any() or torch.equal(y, x))
        ((2, 1, 4, 4), True)
    """
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"`max_shift` must be an integer >= 0; got {max_shift!r}")
    if images.dim() != 4:
        raise ValueError(f"`images` must be [N, C, H, W]; got shape {tuple(images.shape)}")
    if max_shift == 0:
        return images
    n, _, h, w = images.shape
    offsets = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)  # [N, 2]
    padded = F.pad(images, (max_shift,) * 4)  # [N, C, H + 2s, W + 2s], zeros around
    out = torch.empty_like(images)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        top, left = max_shift - dy, max_shift - dx
        out[i] = padded[i, :, top : top + h, left : left + w]
    return out

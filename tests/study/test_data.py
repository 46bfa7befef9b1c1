"""Tests of study.make.data: the bundled digits, the ImageFolder errors, seeded loaders."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from study.make.data import digits, image_folder, loaders


def test_digits_split_sizes_and_shapes():
    train, val = digits(image_size=16, channels=3, seed=0, val_fraction=0.2)
    # sklearn's train_test_split puts ceil(0.2 * 1797) = 360 samples in the test split.
    assert (len(train), len(val)) == (1437, 360)
    assert tuple(train.tensors[0].shape) == (1437, 3, 16, 16)
    assert train.tensors[1].dtype == torch.int64


def test_digits_split_is_stratified():
    _, val = digits(seed=0)
    counts = torch.bincount(val.tensors[1], minlength=10)
    # 1797 digits, 174-183 per class; a stratified 20% split keeps 34-37 of each.
    assert int(counts.min()) >= 34 and int(counts.max()) <= 37


def test_digits_at_size_8_are_the_sklearn_images_standardised():
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    train_idx, _ = train_test_split(
        list(range(1797)), test_size=0.2, stratify=bunch.target, random_state=0
    )
    raw = torch.as_tensor(bunch.images[train_idx], dtype=torch.float32) / 16.0
    expected = (raw - raw.mean()) / raw.std()
    train, _ = digits(image_size=8, channels=1, seed=0)
    torch.testing.assert_close(train.tensors[0][:, 0], expected)
    assert torch.equal(train.tensors[1], torch.as_tensor(bunch.target[train_idx]))


def test_digits_channels_are_identical_copies():
    train, _ = digits(image_size=12, channels=3)
    x = train.tensors[0]
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])


def test_digits_split_depends_on_seed_only():
    a, _ = digits(seed=1)
    b, _ = digits(seed=1)
    c, _ = digits(seed=2)
    assert torch.equal(a.tensors[1], b.tensors[1])
    assert not torch.equal(a.tensors[1], c.tensors[1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 4}, "image_size"),
        ({"channels": 0}, "channels"),
        ({"val_fraction": 1.0}, "val_fraction"),
    ],
)
def test_digits_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        digits(**kwargs)


def test_image_folder_missing_path_names_it(tmp_path):
    missing = tmp_path / "imagenet" / "val"
    with pytest.raises(FileNotFoundError, match="imagenet/val"):
        image_folder(missing)


def test_image_folder_without_class_folders_names_it(tmp_path):
    (tmp_path / "loose.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no class sub-folders"):
        image_folder(tmp_path)


def test_image_folder_reads_classes(tmp_path):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (40, 30), color=(10, 200, 30)).save(tmp_path / cls / "a.png")
    ds = image_folder(tmp_path, image_size=16)
    image, label = ds[1]
    assert ds.classes == ["cat", "dog"] and label == 1
    assert tuple(image.shape) == (3, 16, 16)


def test_loaders_same_seed_same_order():
    train, val = digits()
    first = [y for _, y in loaders(train, val, batch_size=100, seed=3)[0]]
    second = [y for _, y in loaders(train, val, batch_size=100, seed=3)[0]]
    other = [y for _, y in loaders(train, val, batch_size=100, seed=4)[0]]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_loaders_validation_is_not_shuffled():
    train, val = digits()
    _, val_loader = loaders(train, val, batch_size=50)
    assert torch.equal(torch.cat([y for _, y in val_loader]), val.tensors[1])


def test_loaders_rejects_bad_batch_size():
    train, val = digits()
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer; got 0"):
        loaders(train, val, batch_size=0)


def test_random_shift_is_a_zero_filled_translation():
    from study.make.data import random_shift

    images = torch.arange(1.0, 2 * 3 * 5 * 5 + 1).reshape(2, 3, 5, 5)  # no zeros anywhere
    generator = torch.Generator().manual_seed(0)
    offsets = torch.randint(-2, 3, (2, 2), generator=torch.Generator().manual_seed(0))
    shifted = random_shift(images, 2, generator)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        expected = torch.zeros(3, 5, 5)
        # out[y, x] = in[y - dy, x - dx] inside the image, 0 where the content left.
        for y in range(5):
            for x in range(5):
                if 0 <= y - dy < 5 and 0 <= x - dx < 5:
                    expected[:, y, x] = images[i, :, y - dy, x - dx]
        assert torch.equal(shifted[i], expected), (dy, dx)


def test_random_shift_moves_content_and_leaves_zeros():
    from study.make.data import random_shift

    images = torch.ones(64, 1, 8, 8)
    shifted = random_shift(images, 3, torch.Generator().manual_seed(1))
    zeros = (shifted == 0).flatten(1).sum(1)  # per image
    # 64 draws of (dy, dx) in [-3, 3]^2: some image moved, and what moved in is zeros, not a wrap.
    assert int((zeros > 0).sum()) > 50
    assert set(shifted.unique().tolist()) == {0.0, 1.0}


def test_random_shift_zero_is_the_identity_and_bad_values_raise():
    from study.make.data import random_shift

    images = torch.randn(2, 1, 4, 4)
    assert random_shift(images, 0, torch.Generator()) is images
    with pytest.raises(ValueError, match="`max_shift` must be an integer >= 0; got -1"):
        random_shift(images, -1, torch.Generator())
    with pytest.raises(ValueError, match=r"`images` must be \[N, C, H, W\]"):
        random_shift(images[0], 1, torch.Generator())

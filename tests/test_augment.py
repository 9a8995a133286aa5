import torch

from medtl_helpers.data.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BatchAugment,
    normalize,
    to_model_input,
)


def batch(n=4, size=32):
    ramp = torch.linspace(0, 255, size)
    img = ((ramp[None, :] + ramp[:, None]) / 2).to(torch.uint8)
    return img.expand(n, 1, size, size).clone()


def test_to_model_input_normalises_per_channel():
    x = to_model_input(torch.full((2, 1, 4, 4), 255, dtype=torch.uint8))
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32
    for c in range(3):
        expected = (1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert torch.allclose(x[:, c], torch.full((2, 4, 4), expected))
    assert to_model_input(batch(size=32), size=16).shape == (4, 3, 16, 16)


def test_no_op_augmentation_equals_plain_input():
    still = BatchAugment(degrees=0, scale=(1, 1), translate=0, brightness=0, contrast=0)
    x = batch()
    assert torch.allclose(still(x), to_model_input(x), atol=1e-5)


def test_augmentation_is_random_per_image_and_seeded():
    x = batch(8)
    a = BatchAugment(generator=torch.Generator().manual_seed(0))(x)
    b = BatchAugment(generator=torch.Generator().manual_seed(0))(x)
    c = BatchAugment(generator=torch.Generator().manual_seed(1))(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a[0], a[1])
    assert a.shape == (8, 3, 32, 32)


def test_flip_is_off_by_default_and_mirrors_when_on():
    mirror = BatchAugment(
        degrees=0, scale=(1, 1), translate=0, brightness=0, contrast=0, hflip=True
    )
    mirror.generator = torch.Generator().manual_seed(0)
    flips = [mirror.affine_matrices(1)[0, 0, 0].item() for _ in range(20)]
    assert set(flips) == {-1.0, 1.0}
    assert (BatchAugment().affine_matrices(50)[:, 0, 0] > 0).all()


def test_output_size_can_differ_from_input():
    assert BatchAugment()(batch(2, 32), size=24).shape == (2, 3, 24, 24)


def test_normalize_expands_grey_to_three_channels():
    assert normalize(torch.zeros(1, 1, 2, 2)).shape == (1, 3, 2, 2)


def test_training_resizes_exactly_as_evaluation_does():
    # A no-op augmentation must hand the model what to_model_input would: the same antialiased
    # resize, at the cache size (unchanged) and at a smaller training size. 1e-4 is float
    # rounding in grid_sample, far below one grey level (1/255 / 0.22 = 0.018 here).
    still = BatchAugment(degrees=0, scale=(1, 1), translate=0, brightness=0, contrast=0)
    noisy = torch.randint(0, 256, (3, 1, 64, 64), dtype=torch.uint8)  # fine detail aliases
    torch.testing.assert_close(still(noisy, 64), to_model_input(noisy), atol=1e-4, rtol=0)
    torch.testing.assert_close(still(noisy, 24), to_model_input(noisy, 24), atol=1e-4, rtol=0)


def test_resize_leaves_a_batch_at_its_size_untouched_and_rounds_uint8():
    from medtl_helpers.data.augment import resize, resize_uint8

    x = torch.rand(2, 1, 8, 8)
    assert resize(x, 8) is x
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(resize_uint8(images, 8), images)
    flat = torch.full((1, 1, 8, 8), 200, dtype=torch.uint8)
    assert torch.equal(resize_uint8(flat, 3), torch.full((1, 1, 3, 3), 200, dtype=torch.uint8))

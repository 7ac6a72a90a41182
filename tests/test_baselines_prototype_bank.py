"""PBIP stage A: spherical k-means, single-label selection, bank building and saving."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.pbip.prototype_bank import (PrototypeBankError, deterministic_pipeline,
                                           embed_dataset, single_label_indices, spherical_kmeans)

CLASSES = ('TUM', 'STR', 'LYM', 'NEC')


def clusters_on_sphere(k=3, d=16, n=40, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(d, k)))[0].T  # k orthonormal directions
    x = np.concatenate([c + noise * rng.normal(size=(n, d)) for c in centres])
    return centres, 3.0 * x  # scaled: k-means must normalise


def test_spherical_kmeans_recovers_separated_clusters():
    centres, x = clusters_on_sphere()
    found = spherical_kmeans(x, 3, seed=1)
    assert found.shape == (3, 16) and found.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(found, axis=1), 1, atol=1e-5)
    cos = found @ centres.T
    assert sorted(cos.argmax(1)) == [0, 1, 2]  # one centroid per true cluster
    assert cos.max(1).min() > 0.99


def test_spherical_kmeans_is_seeded():
    _, x = clusters_on_sphere(k=5, noise=0.5)
    np.testing.assert_array_equal(spherical_kmeans(x, 4, seed=3), spherical_kmeans(x, 4, seed=3))


def test_spherical_kmeans_too_few_rows():
    with pytest.raises(PrototypeBankError, match='at least k=3'):
        spherical_kmeans(np.ones((2, 8)), 3)


def test_single_label_indices_groups_by_class():
    labels = [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0],
              [0, 0, 1, 0], [0, 1, 1, 1], [0, 0, 0, 1], [0, 1, 0, 0]]
    assert single_label_indices(labels, 4, 2, CLASSES) == [[0, 5], [3, 9], [2, 6], [4, 8]]


def test_single_label_indices_errors():
    with pytest.raises(PrototypeBankError, match=r"too few for \{'STR': 1, 'NEC': 0\}"):
        single_label_indices([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
                              [0, 0, 1, 0]], 4, 2, CLASSES)
    with pytest.raises(PrototypeBankError, match='none of the 2 training images'):
        single_label_indices([[1, 1, 0, 0], [0, 0, 1, 1]], 4, 1, CLASSES)
    with pytest.raises(PrototypeBankError, match=r'image 0: img_label has shape \(3,\)'):
        single_label_indices([[1, 0, 0]], 4, 1, CLASSES)


def test_deterministic_pipeline_drops_random_transforms():
    pipeline = [dict(type='LoadImageFromFile'), dict(type='RandomFlip', prob=0.5),
                dict(type='RandomRotate90'), dict(type='PhotoMetricDistortion'),
                dict(type='PackWSSSInputs')]
    assert [t['type'] for t in deterministic_pipeline(pipeline)] == ['LoadImageFromFile',
                                                                     'PackWSSSInputs']


class _Stack:
    """Stands in for the data preprocessor: the batch is already a list of (3, H, W) tensors."""

    def __call__(self, batch, training):
        return dict(inputs=torch.stack(batch))


class _MeanColour(torch.nn.Module):
    def forward(self, x):
        return x.mean((2, 3)) + x[:, :, :1, :1].flatten(1)  # mean colour + top-left pixel


@pytest.mark.parametrize('size', [None, 4, (8, 8)])
def test_embed_dataset_resizes_like_the_refiner(size):
    from lpd_bench.models.encoder_resize import resize_for_encoder
    gen = torch.Generator().manual_seed(0)
    dataset = [torch.randn(3, 8, 8, generator=gen) for _ in range(3)]
    out = embed_dataset(_MeanColour(), _Stack(), dataset, [1, 2], 1, 'cpu', size=size)
    inputs = resize_for_encoder(torch.stack(dataset[1:]), size)
    assert tuple(inputs.shape[-2:]) == ((4, 4) if size == 4 else (8, 8))
    torch.testing.assert_close(out, F.normalize(_MeanColour()(inputs), dim=1))

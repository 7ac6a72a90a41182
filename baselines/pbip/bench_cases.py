"""Benchmark cases of PBIP's stage A (kind 'custom' of :mod:`lpd_bench.bench.cases`): the
frozen-encoder embeddings of a batch and the spherical k-means of the bank."""
import numpy as np
import torch

from lpd_bench.bench.case_spec import PreparedCase, random_batch

#: Single-label embeddings per class clustered by the k-means case.
KMEANS_POINTS_PER_CLASS = 256


def prepare_encode(cfg, batch: int, size: int, device) -> PreparedCase:
    """Normalised frozen-encoder embeddings of ``batch`` random images, as stage A embeds them."""
    from mmseg.registry import MODELS

    from lpd_bench.models.encoder_resize import resize_for_encoder
    device = torch.device(device)
    refiner = cfg.model.decode_head.refiner_loss
    encoder = MODELS.build(refiner.encoder).to(device).eval()
    data = random_batch(batch, size, int(cfg.model.decode_head.num_classes))
    inputs = MODELS.build(cfg.model.data_preprocessor).to(device)(data, False)['inputs']
    if refiner.get('cutout_size') is not None:
        inputs = resize_for_encoder(inputs, refiner.get('cutout_size'))

    def encode():
        with torch.no_grad():
            return torch.nn.functional.normalize(encoder(inputs).float(), dim=1)
    return PreparedCase(encode, batch)


def prepare_kmeans(cfg, batch: int, size: int, device) -> PreparedCase:
    """Spherical k-means of :data:`KMEANS_POINTS_PER_CLASS` random embeddings per class."""
    from .prototype_bank import spherical_kmeans
    num_classes = int(cfg.model.decode_head.num_classes)
    k = int(cfg.model.decode_head.prototypes.get('num_per_class', 3))
    dim = int(cfg.model.decode_head.prototypes.get('dim', 512))
    feats = np.random.default_rng(0).standard_normal(
        (num_classes, KMEANS_POINTS_PER_CLASS, dim)).astype(np.float32)

    def run():
        return [spherical_kmeans(f, k, seed=0) for f in feats]
    return PreparedCase(run, KMEANS_POINTS_PER_CLASS * num_classes)

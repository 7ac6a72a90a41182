"""Data transforms of the WSSS pipelines (registered in mmseg TRANSFORMS).

The public code augments training images with a horizontal flip (p=0.5), an independent vertical
flip (p=0.5) and a random 90-degree rotation (albumentations ``RandomRotate90``, p=0.5: when
applied, k*90 degrees with k uniform in 0..3, so k=0 can be drawn too). mmseg's ``RandomFlip``
with a list of directions picks at most one of them, so two ``RandomFlip`` transforms are used:
see ``TRAIN_AUGMENTATION``.
"""
import inspect

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS

#: PackSegInputs' default meta keys plus the image-level label.
WSSS_META_KEYS = tuple(
    inspect.signature(PackSegInputs.__init__).parameters['meta_keys'].default) + ('img_label', )

#: Training augmentation of the public LPD/PBIP code, as mmseg pipeline steps.
TRAIN_AUGMENTATION = (
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRotate90', prob=0.5),
)


@TRANSFORMS.register_module()
class PackWSSSInputs(PackSegInputs):
    """PackSegInputs that also puts ``img_label`` (multi-hot, int64) into the sample metainfo."""

    def __init__(self, meta_keys=WSSS_META_KEYS):
        if 'img_label' not in meta_keys:
            raise ValueError(f"meta_keys {tuple(meta_keys)} must include 'img_label'")
        super().__init__(meta_keys=tuple(meta_keys))

    def transform(self, results: dict) -> dict:
        if results.get('img_label') is None:
            raise KeyError(f"{results.get('img_path', '<no img_path>')}: no 'img_label' in the "
                           'pipeline results (load the data with BCSSWSSSDataset)')
        results['img_label'] = np.asarray(results['img_label'], dtype=np.int64)
        return super().transform(results)


@TRANSFORMS.register_module()
class RandomRotate90(BaseTransform):
    """With probability ``prob``, rotate the image and seg maps by k*90 degrees, k uniform in 0..3.

    As albumentations' ``RandomRotate90`` (default p=0.5, the public code's setting): applied with
    probability ``prob``, then k drawn uniformly from 0..3 (k = 0 leaves the image as it is), so an
    image is rotated by a non-zero angle with probability 0.75 * prob.

    Added keys: ``rotate90_k`` (the k used, 0 when not rotated). Updated: img, seg maps, img_shape.
    """

    def __init__(self, prob: float = 0.5):
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = prob

    @cache_randomness
    def _choose_k(self) -> int:
        return int(np.random.randint(4)) if np.random.rand() < self.prob else 0

    def transform(self, results: dict) -> dict:
        k = self._choose_k()
        results['rotate90_k'] = k
        if k:
            keys = ['img'] + list(dict.fromkeys(results.get('seg_fields', [])))
            if 'gt_seg_map' in results and 'gt_seg_map' not in keys:
                keys.append('gt_seg_map')
            for key in keys:
                results[key] = np.ascontiguousarray(np.rot90(results[key], k, axes=(0, 1)))
            results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self):
        return f'{self.__class__.__name__}(prob={self.prob})'

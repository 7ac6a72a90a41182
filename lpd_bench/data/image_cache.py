"""``CachedLoadImageFromFile``: mmcv's ``LoadImageFromFile`` that decodes each file once per
process and keeps the decoded array in memory.

The CPU preset trains on a few hundred small patches for hundreds of iterations, so every image
is decoded about ten times per run, and PNG decoding is a sizeable share of a training step on
one core (reports/calibration_v3.md, part 3). The cached array is the one the first decode gave
and each call hands out a copy (later transforms may write into it), so the pipeline's output is
the same as without the cache. The cache holds at most ``max_cache_bytes`` of decoded images
(then the remaining files are decoded every time), and it lives in the process that runs the
pipeline: with dataloader workers each worker has its own, which is why only the CPU preset
(no workers, a small train split) uses it.
"""
from typing import Optional

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CachedLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` with an in-memory cache of decoded images (module docstring).

    Args:
        max_cache_bytes: the most decoded-image bytes kept (default 512 MiB).
        **kwargs: ``LoadImageFromFile``'s arguments.
    """

    def __init__(self, max_cache_bytes: int = 512 * 2**20, **kwargs):
        super().__init__(**kwargs)
        if max_cache_bytes < 0:
            raise ValueError(f'max_cache_bytes must be >= 0, got {max_cache_bytes}')
        self.max_cache_bytes = int(max_cache_bytes)
        self.cache = {}
        self.cached_bytes = 0

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        image = self.cache.get(path)
        if image is None:
            results = super().transform(results)
            if results is None:  # ignore_empty and unreadable: nothing to cache
                return None
            image = results['img']
            if self.cached_bytes + image.nbytes <= self.max_cache_bytes:
                self.cache[path] = image.copy()
                self.cached_bytes += image.nbytes
            return results
        image = np.array(image, copy=True)
        results['img'] = image
        results['img_shape'] = image.shape[:2]
        results['ori_shape'] = image.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, max_cache_bytes={self.max_cache_bytes})'

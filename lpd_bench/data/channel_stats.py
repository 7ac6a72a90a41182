"""Per-channel mean and std of a dataset's train images, for a config's data_preprocessor.

Images are decoded as the loader decodes them: ``mmcv.imfrombytes`` with its default OpenCV
backend and ``flag='color'``, i.e. ``cv2.imdecode(..., cv2.IMREAD_COLOR)``, which gives BGR
(grey images are expanded to 3 channels); the configs keep ``bgr_to_rgb=False``, so the
statistics are in B, G, R order. One image at a time is read and folded into a 256-bin histogram
per channel, so memory does not grow with the set; the mean and the (population, ddof=0)
standard deviation over all pixels of all images follow exactly from the histograms.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Tuple

import cv2
import numpy as np

from .validation import DataProblem, DatasetError, split_dir

#: Channel order of the statistics (the loader's).
CHANNELS = ('B', 'G', 'R')


class ImageReadError(ValueError):
    """An image could not be read; names the file."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f'{self.path}: {problem}')


def read_bgr(path) -> np.ndarray:
    """(H, W, 3) uint8 BGR image, decoded as ``LoadImageFromFile`` decodes it."""
    try:
        data = np.frombuffer(Path(path).read_bytes(), np.uint8)
    except OSError as err:
        raise ImageReadError(path, f'cannot read the file ({err.strerror or err})') from err
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageReadError(path, 'unreadable image (OpenCV cannot decode it)')
    return image


@dataclass(frozen=True)
class ChannelStats:
    """Statistics over ``pixels`` pixels of ``images`` images, per channel in CHANNELS order,
    on 0..255 values."""
    images: int
    pixels: int
    mean_255: Tuple[float, float, float]
    std_255: Tuple[float, float, float]

    @property
    def mean_01(self) -> Tuple[float, ...]:
        return tuple(v / 255 for v in self.mean_255)

    @property
    def std_01(self) -> Tuple[float, ...]:
        return tuple(v / 255 for v in self.std_255)


def channel_stats(paths: Iterable, progress: Optional[Callable[[int], None]] = None
                  ) -> ChannelStats:
    """Mean and std per channel over every pixel of the images at ``paths`` (read one at a
    time); ``progress(images_done)`` is called after each image.

    Raises:
        ImageReadError: an image cannot be read or decoded (the first such file).
        ValueError: ``paths`` is empty.
    """
    histograms = np.zeros((len(CHANNELS), 256), np.int64)
    images = 0
    for path in paths:
        image = read_bgr(path)
        for c in range(len(CHANNELS)):
            histograms[c] += np.bincount(image[..., c].ravel(), minlength=256)
        images += 1
        if progress is not None:
            progress(images)
    if not images:
        raise ValueError('no images to compute statistics from')
    values = np.arange(256, dtype=np.float64)
    pixels = int(histograms[0].sum())
    mean = histograms @ values / pixels
    var = (histograms * (values[None] - mean[:, None]) ** 2).sum(1) / pixels
    return ChannelStats(images, pixels, tuple(mean.tolist()), tuple(np.sqrt(var).tolist()))


def train_images(root) -> list:
    """Sorted ``*.png`` of the train split of the dataset at ``root``.

    Raises:
        DatasetError: the folder or its ``train/`` is missing, or ``train/`` has no PNG.
    """
    if not Path(root).is_dir():
        raise DatasetError([DataProblem(str(root), 'dataset folder does not exist')],
                           f'dataset {root}')
    folder = split_dir(root, 'train')
    paths = sorted(p for p in folder.glob('*.png') if p.is_file())
    if not paths:
        raise DatasetError([DataProblem(str(folder), 'train split has no PNG images')],
                           f'dataset {root}')
    return paths

"""LayoutDataset: the mmseg dataset of one dataset layout (BCSS-WSSS, LUAD-HistoSeg), shared by
the registered types (bcss_dataset.BCSSWSSSDataset, luad_dataset.LUADHistoSegDataset).

Train images carry their multi-hot label in the file name and have no mask; val/test images have
a mask, from which the label is derived (classes 0..3 present). See ARCHITECTURE.md "Data
contract".
"""
from pathlib import Path
from typing import List, Optional

import numpy as np
from PIL import Image
from mmseg.datasets import BaseSegDataset

from .layouts import DatasetLayout
from .synthetic import default_synthetic_root, mask_label
from .validation import SPLITS, DataProblem, DatasetError, assert_valid_dataset, split_dir


class LayoutDataset(BaseSegDataset):
    """Split ``train``, ``val`` (folder ``val/`` or ``valid/``) or ``test`` of a dataset in the
    subclass's ``LAYOUT`` (class names and palette: ``METAINFO = LAYOUT.metainfo()``).

    Args:
        data_root: dataset folder; None means the layout's default synthetic set (generated on
            first use).
        split: 'train', 'val' or 'test'.
        validate: run ``check_dataset`` on the split first and raise one DatasetError listing
            every problem (train names of the other layout included).
        **kwargs: passed to ``BaseSegDataset`` (pipeline, test_mode, ...).
    """
    LAYOUT: DatasetLayout

    def __init__(self, data_root: Optional[str] = None, split: str = 'train',
                 validate: bool = False, **kwargs):
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        for key in ('data_prefix', 'ann_file'):
            if key in kwargs:
                raise TypeError(f'{type(self).__name__} sets {key} itself from split={split!r}')
        root = Path(default_synthetic_root(layout=self.LAYOUT.key)
                    if data_root is None else data_root)
        folder = split_dir(root, split).name
        if validate:
            assert_valid_dataset(root, (split, ), layout=self.LAYOUT)
        self.split = split
        prefix = (dict(img_path=folder) if split == 'train' else dict(
            img_path=f'{folder}/img', seg_map_path=f'{folder}/mask'))
        kwargs.setdefault('img_suffix', '.png')
        kwargs.setdefault('seg_map_suffix', '.png')
        super().__init__(data_root=str(root), data_prefix=prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        """One info dict per image (sorted by name), with ``img_label`` (4,) int64."""
        img_dir = Path(self.data_prefix['img_path'])
        paths = sorted(img_dir.glob('*' + self.img_suffix))
        if not paths:
            raise DatasetError([DataProblem(str(img_dir), f'no *{self.img_suffix} images')])
        data_list, problems = [], []
        for path in paths:
            seg_map_path = None
            try:
                if self.split == 'train':
                    label = self.LAYOUT.parse_train_label(path)
                else:
                    seg_map_path = Path(self.data_prefix['seg_map_path']) / (
                        path.name[:-len(self.img_suffix)] + self.seg_map_suffix)
                    label = mask_label(np.asarray(Image.open(seg_map_path)))
            except (ValueError, OSError) as err:
                problems.append(DataProblem(str(path), getattr(err, 'problem', str(err))))
                continue
            data_list.append(
                dict(img_path=str(path), seg_map_path=seg_map_path and str(seg_map_path),
                     img_label=label, label_map=self.label_map,
                     reduce_zero_label=self.reduce_zero_label, seg_fields=[]))
        if problems:
            raise DatasetError(problems, f'{self.split} split of {self.data_root}')
        return data_list

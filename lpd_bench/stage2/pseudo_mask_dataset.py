"""PseudoMaskDataset: the train images of a dataset paired with a folder of pseudo-masks.

The second stage trains an ordinary fully supervised network on it: image
``<data_root>/train/<name>.png``, mask ``<mask_dir>/<name>.png`` (written by
``python -m lpd_bench.stage2.pseudo_masks``, values 0..4 and 255 = ignore). Class names and
palette are the dataset layout's (BCSS-WSSS or LUAD-HistoSeg). The config alias
``pseudo_mask_dir`` (``--cfg-options pseudo_mask_dir=PATH``) sets ``mask_dir`` of every
PseudoMaskDataset of a config.
"""
from pathlib import Path
from typing import List, Optional

import numpy as np
from PIL import Image
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..apis import dataloader_datasets, register_config_alias
from ..data.layouts import get_layout
from ..data.synthetic import default_synthetic_root
from ..data.validation import DataProblem, DatasetError, detect_layout, split_dir
from .mask_folder import MANIFEST_NAME, PARTIAL_NAME, VALID_VALUES, read_manifest


@DATASETS.register_module()
class PseudoMaskDataset(BaseSegDataset):
    """Train images of ``data_root`` with the pseudo-masks of ``mask_dir`` as ground truth.

    Args:
        mask_dir: the pseudo-mask folder (one PNG per train image, same name).
        data_root: dataset folder; None means the layout's default synthetic set.
        layout: 'bcss' or 'luad'; None: the pseudo-mask manifest's, else told from the train
            file names (``detect_layout``).
        check_masks: check every mask when loading (exists, same size as its image, values in
            0..4 or 255) and raise one DatasetError listing every problem.
        **kwargs: passed to ``BaseSegDataset`` (pipeline, ...).
    """

    def __init__(self, mask_dir: Optional[str] = None, data_root: Optional[str] = None,
                 layout: Optional[str] = None, check_masks: bool = True, **kwargs):
        if mask_dir is None:
            raise ValueError('PseudoMaskDataset needs its pseudo-mask folder: set mask_dir, '
                             'e.g. --cfg-options pseudo_mask_dir=PATH')
        for key in ('data_prefix', 'ann_file', 'metainfo'):
            if key in kwargs:
                raise TypeError(f'PseudoMaskDataset sets {key} itself')
        mask_dir = Path(mask_dir).resolve()
        if not mask_dir.is_dir():
            raise DatasetError([DataProblem(str(mask_dir), 'pseudo-mask folder does not exist')])
        if (mask_dir / PARTIAL_NAME).exists() and not (mask_dir / MANIFEST_NAME).exists():
            raise DatasetError([DataProblem(str(mask_dir), f'unfinished pseudo-masks '
                                            f'({PARTIAL_NAME}, no {MANIFEST_NAME}): run the '
                                            'pseudo-mask step again to complete them')])
        if layout is None:
            layout = (read_manifest(mask_dir) or {}).get('layout')
        root = Path(default_synthetic_root(layout=layout or 'bcss')
                    if data_root is None else data_root)
        self.layout = get_layout(layout) if layout else detect_layout(root).layout
        self.check_masks = check_masks
        kwargs.setdefault('img_suffix', '.png')
        kwargs.setdefault('seg_map_suffix', '.png')
        super().__init__(
            data_root=str(root), metainfo=self.layout.metainfo(),
            data_prefix=dict(img_path=str(split_dir(root, 'train')), seg_map_path=str(mask_dir)),
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """One info dict per train image (sorted by name) with its pseudo-mask."""
        img_dir = Path(self.data_prefix['img_path'])
        mask_dir = Path(self.data_prefix['seg_map_path'])
        paths = sorted(img_dir.glob('*' + self.img_suffix))
        if not paths:
            raise DatasetError([DataProblem(str(img_dir), f'no *{self.img_suffix} images')])
        data_list, problems = [], []
        for path in paths:
            mask = mask_dir / (path.name[:-len(self.img_suffix)] + self.seg_map_suffix)
            if self.check_masks:
                problems += mask_problems(path, mask)
            data_list.append(dict(img_path=str(path), seg_map_path=str(mask),
                                  label_map=self.label_map,
                                  reduce_zero_label=self.reduce_zero_label, seg_fields=[]))
        if problems:
            raise DatasetError(problems, f'pseudo-masks {mask_dir} for the images of {img_dir}')
        return data_list


def mask_problems(image: Path, mask: Path) -> List[DataProblem]:
    """Problems of the pseudo-mask of one image: missing, another size, values not 0..4/255."""
    if not mask.is_file():
        return [DataProblem(str(image), f'no pseudo-mask for this image (expected {mask})')]
    with Image.open(image) as im:
        image_size = im.size
    try:
        with Image.open(mask) as im:
            values = np.asarray(im)
    except Exception as err:  # PIL raises many types for corrupt files
        return [DataProblem(str(mask), f'unreadable pseudo-mask ({type(err).__name__}: {err})')]
    problems = []
    if values.ndim != 2:
        problems.append(DataProblem(str(mask), f'pseudo-mask has {values.shape[-1]} channels, '
                                    'expected one (a palette or grey PNG)'))
        values = values[..., 0]
    if (values.shape[1], values.shape[0]) != image_size:
        problems.append(DataProblem(
            str(mask), f'pseudo-mask is {values.shape[1]}x{values.shape[0]} but its image is '
            f'{image_size[0]}x{image_size[1]}'))
    bad = np.setdiff1d(np.unique(values), VALID_VALUES)
    if bad.size:
        problems.append(DataProblem(str(mask), f'pseudo-mask values {bad.tolist()} outside '
                                    '0..4 and 255 (ignore)'))
    return problems


@register_config_alias('pseudo_mask_dir')
def set_pseudo_mask_dir(cfg, path) -> None:
    """``--cfg-options pseudo_mask_dir=PATH``: the ``mask_dir`` of every PseudoMaskDataset of the
    config's dataloaders (the second stage's train set)."""
    datasets = [d for d in dataloader_datasets(cfg) if d.get('type') == 'PseudoMaskDataset']
    if not datasets:
        raise ValueError(f'pseudo_mask_dir={path!r} given, but no dataloader of the config reads '
                         'a PseudoMaskDataset (a second-stage config: configs/stage2_*.py)')
    cfg.pseudo_mask_dir = path
    for dataset in datasets:
        dataset['mask_dir'] = path

"""PseudoMaskDataset (train images + a pseudo-mask folder) and the ``pseudo_mask_dir`` alias."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lpd_bench.data.layouts import BCSS, LUAD
from lpd_bench.data.validation import DatasetError
from lpd_bench.stage2.mask_folder import MANIFEST_NAME, PARTIAL_NAME, read_mask, write_mask
from lpd_bench.stage2.pseudo_mask_dataset import PseudoMaskDataset

from helpers import REPO

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')]


def images(root):
    return sorted((Path(root) / 'train').glob('*.png'))


def write_masks(root, folder, layout=BCSS):
    """One pseudo-mask per train image: stripes of its label's classes, BG and an ignored row."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images(root)):
        with Image.open(image) as im:
            width, height = im.size
        classes = np.flatnonzero(layout.parse_train_label(image)).tolist() + [4]
        mask = np.array(classes * width, np.uint8)[:width][None].repeat(height, 0)
        mask[i % height] = 255
        write_mask(folder / image.name, mask, layout.palette)
    return folder


@pytest.fixture(scope='module')
def luad_data(tmp_path_factory):
    from lpd_bench.data.synthetic import write_synthetic_dataset
    return write_synthetic_dataset(tmp_path_factory.mktemp('luad') / 'LUAD', seed=3, n_train=4,
                                   n_val=2, n_test=2, patch_size=64, layout='luad')


def test_train_images_paired_with_their_pseudo_masks(tiny_data, tmp_path):
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    masks = write_masks(tiny_data, tmp_path / 'masks')
    dataset = PseudoMaskDataset(mask_dir=str(masks), data_root=tiny_data, pipeline=PIPELINE)
    assert len(dataset) == 8
    assert dataset.metainfo['classes'] == BCSS.classes
    assert [tuple(c) for c in dataset.metainfo['palette']] == list(BCSS.palette)
    for i, image in enumerate(images(tiny_data)):
        info = dataset.get_data_info(i)
        assert info['img_path'] == str(image)
        assert info['seg_map_path'] == str((masks / image.name).resolve())
    item = dataset[3]
    gt = item['data_samples'].gt_sem_seg.data[0].numpy()
    assert np.array_equal(gt, read_mask(masks / images(tiny_data)[3].name))
    assert set(np.unique(gt).tolist()) >= {4, 255}


def test_luad_layout_from_the_train_names_or_the_manifest(luad_data, tmp_path):
    masks = write_masks(luad_data, tmp_path / 'masks', LUAD)
    dataset = PseudoMaskDataset(mask_dir=str(masks), data_root=str(luad_data))
    assert dataset.layout is LUAD and dataset.metainfo['classes'] == LUAD.classes
    assert [tuple(c) for c in dataset.metainfo['palette']] == list(LUAD.palette)
    assert len(dataset) == 4
    (masks / MANIFEST_NAME).write_text(json.dumps({'layout': 'bcss'}))  # the manifest says BCSS
    assert PseudoMaskDataset(mask_dir=str(masks), data_root=str(luad_data),
                             check_masks=False).layout is BCSS
    assert PseudoMaskDataset(mask_dir=str(masks), data_root=str(luad_data),
                             layout='luad').layout is LUAD


def test_every_bad_mask_is_listed_with_its_reason(tiny_data, tmp_path):
    masks = write_masks(tiny_data, tmp_path / 'masks')
    names = [p.name for p in images(tiny_data)]
    (masks / names[0]).unlink()
    write_mask(masks / names[1], np.zeros((32, 32), np.uint8), BCSS.palette)
    bad = read_mask(masks / names[2]).copy()
    bad[0, :2] = [7, 9]
    write_mask(masks / names[2], bad, BCSS.palette)
    with pytest.raises(DatasetError) as err:
        PseudoMaskDataset(mask_dir=str(masks), data_root=tiny_data)
    message = str(err.value)
    assert 'has 3 problem(s)' in message
    assert re.search(re.escape(names[0]) + r': no pseudo-mask for this image \(expected .*' +
                     re.escape(names[0]) + r'\)', message)
    assert f'{names[1]}: pseudo-mask is 32x32 but its image is 64x64' in message
    assert f'{names[2]}: pseudo-mask values [7, 9] outside 0..4 and 255 (ignore)' in message


def test_no_folder_a_missing_folder_and_an_unfinished_one_are_refused(tiny_data, tmp_path):
    with pytest.raises(ValueError, match='needs its pseudo-mask folder: set mask_dir, e.g. '
                       '--cfg-options pseudo_mask_dir=PATH'):
        PseudoMaskDataset(data_root=tiny_data)
    with pytest.raises(DatasetError, match='pseudo-mask folder does not exist'):
        PseudoMaskDataset(mask_dir=str(tmp_path / 'none'), data_root=tiny_data)
    masks = write_masks(tiny_data, tmp_path / 'masks')
    (masks / PARTIAL_NAME).write_text('{}')
    with pytest.raises(DatasetError, match=r'unfinished pseudo-masks \(.partial.json, no '
                       r'manifest.json\)'):
        PseudoMaskDataset(mask_dir=str(masks), data_root=tiny_data)


def test_pseudo_mask_dir_alias_reaches_the_train_dataset():
    from lpd_bench.apis import load_config
    cfg = load_config(str(REPO / 'configs' / 'stage2_synth_cpu.py'),
                      {'pseudo_mask_dir': '/x/masks', 'data_root': '/x/data'})
    assert cfg.pseudo_mask_dir == '/x/masks'
    assert cfg.train_dataloader.dataset.type == 'PseudoMaskDataset'
    assert cfg.train_dataloader.dataset.mask_dir == '/x/masks'
    assert cfg.train_dataloader.dataset.data_root == '/x/data'
    with pytest.raises(ValueError, match='no dataloader of the config reads a PseudoMaskDataset'):
        load_config(str(REPO / 'configs' / 'cam_synth_cpu.py'), {'pseudo_mask_dir': '/x'})

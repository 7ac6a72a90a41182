import shutil

import numpy as np
import pytest
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope
from mmseg.registry import TRANSFORMS

from lpd_bench.data import synthetic
from lpd_bench.data.bcss_dataset import BCSSWSSSDataset
from lpd_bench.data.filenames import parse_train_label
from lpd_bench.data.transforms import TRAIN_AUGMENTATION, PackWSSSInputs, RandomRotate90
from lpd_bench.data.validation import DatasetError


@pytest.fixture(scope='module', autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return synthetic.write_synthetic_dataset(tmp_path_factory.mktemp('ds') / 'set', seed=5,
                                             n_train=8, n_val=4, n_test=4, patch_size=64)


def test_train_split_labels_from_names(root):
    ds = BCSSWSSSDataset(str(root), 'train')
    assert len(ds) == 8
    assert ds.metainfo['classes'] == ('TUM', 'STR', 'LYM', 'NEC', 'BG')
    assert [tuple(c) for c in ds.metainfo['palette']][0] == (255, 0, 0)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['seg_map_path'] is None and info['label_map'] is None
        assert info['reduce_zero_label'] is False and info['seg_fields'] == []
        assert info['img_label'].dtype == np.int64
        assert info['img_label'].tolist() == parse_train_label(info['img_path']).tolist()


@pytest.mark.parametrize('split', ['val', 'test'])
def test_annotated_split_labels_from_masks(root, split):
    ds = BCSSWSSSDataset(str(root), split)
    assert len(ds) == 4
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        mask = np.asarray(synthetic.Image.open(info['seg_map_path']))
        present = [int((mask == c).any()) for c in range(4)]
        assert info['img_label'].tolist() == present and info['img_path'].endswith('.png')


def test_valid_folder_and_both_folders(root, tmp_path):
    copy = shutil.copytree(root, tmp_path / 'set')
    (copy / 'val').rename(copy / 'valid')
    assert len(BCSSWSSSDataset(str(copy), 'val')) == 4
    shutil.copytree(copy / 'valid', copy / 'val')
    with pytest.raises(DatasetError, match='both val/ and valid/'):
        BCSSWSSSDataset(str(copy), 'val')


def test_bad_train_names_are_all_listed(root, tmp_path):
    copy = shutil.copytree(root, tmp_path / 'set')
    bad = sorted((copy / 'train').glob('*.png'))[:2]
    for p in bad:
        p.rename(p.with_name(p.name[:p.name.rindex('[')] + '[0000].png'))
    with pytest.raises(DatasetError) as info:
        BCSSWSSSDataset(str(copy), 'train')
    assert str(info.value).count('all zero') == 2


def test_validate_option_reports_every_problem(root, tmp_path):
    copy = shutil.copytree(root, tmp_path / 'set')
    for p in sorted((copy / 'test' / 'mask').glob('*.png'))[:2]:
        p.unlink()
    with pytest.raises(DatasetError, match='2 problem'):
        BCSSWSSSDataset(str(copy), 'test', validate=True)


def test_unknown_split(root):
    with pytest.raises(ValueError, match='split must be one of'):
        BCSSWSSSDataset(str(root), 'training')


def test_none_root_uses_default_synthetic_set(tmp_path, monkeypatch):
    monkeypatch.setenv(synthetic.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(synthetic, 'DEFAULT_SPLIT_SIZES', {'train': 3, 'val': 2, 'test': 2})
    monkeypatch.setattr(synthetic, 'DEFAULT_PATCH_SIZE', 48)
    ds = BCSSWSSSDataset(None, 'test')
    assert len(ds) == 2 and ds.data_root.startswith(str(tmp_path))


def _pipeline(*steps):
    return [dict(type='LoadImageFromFile'), *steps, dict(type='PackWSSSInputs')]


def test_label_survives_packing_on_every_split(root):
    for split, steps in [('train', TRAIN_AUGMENTATION), ('val', [dict(type='LoadAnnotations')])]:
        ds = BCSSWSSSDataset(str(root), split, pipeline=_pipeline(*steps))
        for i in range(len(ds)):
            sample = ds[i]['data_samples']
            assert list(sample.metainfo['img_label']) == ds.get_data_info(i)['img_label'].tolist()
            assert ds[i]['inputs'].shape == (3, 64, 64)
        if split == 'val':
            assert sample.gt_sem_seg.data.shape == (1, 64, 64)


def test_pack_without_label_names_the_file():
    with pytest.raises(KeyError, match='x.png'):
        PackWSSSInputs()(dict(img=np.zeros((4, 4, 3), np.uint8), img_path='x.png'))


def test_rotate90_moves_pixels_and_keeps_mask_aligned():
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    seg = img[..., 0].copy()
    seen = set()
    rot = RandomRotate90(prob=1.0)
    for seed in range(40):
        np.random.seed(seed)
        out = rot(dict(img=img.copy(), gt_seg_map=seg.copy(), seg_fields=['gt_seg_map'],
                       img_shape=(4, 5)))
        k = out['rotate90_k']
        seen.add(k)
        assert np.array_equal(out['img'], np.rot90(img, k))
        assert np.array_equal(out['gt_seg_map'], out['img'][..., 0])  # still aligned
        assert out['img_shape'] == out['img'].shape[:2]
    assert seen == {0, 1, 2, 3}
    # k=1 is a counter-clockwise quarter turn: the top-right pixel goes to the top-left
    assert np.rot90(img, 1)[0, 0, 0] == img[0, -1, 0]


def test_rotate90_prob_zero_is_identity():
    img = np.random.rand(3, 6, 3)
    out = RandomRotate90(prob=0.0)(dict(img=img, img_shape=(3, 6)))
    assert out['rotate90_k'] == 0 and out['img'] is img
    with pytest.raises(ValueError):
        RandomRotate90(prob=1.5)


def test_train_augmentation_flips_independently():
    img = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    flips = Compose([TRANSFORMS.build(cfg) for cfg in TRAIN_AUGMENTATION[:2]])
    outcomes = set()
    for seed in range(60):
        np.random.seed(seed)
        out = flips(dict(img=img.copy(), gt_seg_map=img[..., 0].copy(),
                         seg_fields=['gt_seg_map'], img_shape=(2, 2)))
        assert np.array_equal(out['gt_seg_map'], out['img'][..., 0])
        outcomes.add(out['img'][..., 0].tobytes())
    assert len(outcomes) == 4  # none, h, v and h+v (a 180-degree turn) all occur

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lpd_bench.data import synthetic
from lpd_bench.data.bcss_meta import PALETTE
from lpd_bench.data.filenames import parse_train_label
from lpd_bench.data.synthetic import mask_label, write_synthetic_dataset

SMALL = dict(n_train=8, n_val=4, n_test=4, patch_size=64)


@pytest.fixture(scope='module')
def small_root(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp('synth') / 'set', seed=3, **SMALL)


def _manifest(root):
    return json.loads((Path(root) / 'manifest.json').read_text())


def test_layout_and_manifest_counts(small_root):
    m = _manifest(small_root)
    assert m['counts'] == {'train': 8, 'val': 4, 'test': 4}
    assert m['seed'] == 3 and m['patch_size'] == 64
    assert m['generator_version'] == synthetic.GENERATOR_VERSION
    assert len(list((small_root / 'train').glob('*.png'))) == 8
    for split in ('val', 'test'):
        imgs = sorted(p.name for p in (small_root / split / 'img').glob('*.png'))
        masks = sorted(p.name for p in (small_root / split / 'mask').glob('*.png'))
        assert len(imgs) == 4 and imgs == masks
    files = sorted(p.relative_to(small_root).as_posix() for p in small_root.rglob('*.png'))
    assert sorted(m['sha256']) == files
    image_level = m['splits']['train']['image_level']
    labels = np.array([parse_train_label(p) for p in (small_root / 'train').glob('*.png')])
    assert [image_level[c] for c in ('TUM', 'STR', 'LYM', 'NEC')] == labels.sum(0).tolist()


def test_images_and_masks_format(small_root):
    for path in (small_root / 'val' / 'mask').glob('*.png'):
        mask = Image.open(path)
        assert mask.mode == 'P' and mask.size == (64, 64)
        assert mask.getpalette()[:15] == [v for rgb in PALETTE for v in rgb]
        assert np.asarray(mask).max() <= 4
        img = Image.open(small_root / 'val' / 'img' / path.name)
        assert img.mode == 'RGB' and img.size == (64, 64)


def test_train_names_are_labels_of_the_generated_mask():
    slides = synthetic.split_slides(0, 'train', 20)
    for i in range(20):
        rgb, mask = synthetic.generate_patch(0, 'train', i, 96, slides[i % len(slides)])
        assert rgb.shape == (96, 96, 3) and rgb.dtype == np.uint8
        label = mask_label(mask)
        assert label.any() and set(np.unique(mask)) <= {0, 1, 2, 3, 4}
        tissue = mask[mask < 4]
        for c in np.flatnonzero(label):  # every labelled class covers >= 2% of the tissue
            assert (tissue == c).mean() >= synthetic.MIN_CLASS_FRACTION


def test_mix_of_single_and_multi_label_patches():
    masks = [synthetic.sample_mask(np.random.default_rng(i), 96) for i in range(60)]
    n_classes = np.array([mask_label(m).sum() for m in masks])
    assert (n_classes >= 1).all() and (n_classes <= 3).all()
    assert (n_classes == 1).mean() >= 0.25 and (n_classes >= 2).mean() >= 0.3
    assert any((m == 4).any() for m in masks)  # some white background


def test_same_seed_identical_bytes_other_seed_differs(tmp_path, small_root):
    again = write_synthetic_dataset(tmp_path / 'again', seed=3, **SMALL)
    other = write_synthetic_dataset(tmp_path / 'other', seed=4, **SMALL)
    assert (again / 'manifest.json').read_bytes() == (small_root / 'manifest.json').read_bytes()
    m = _manifest(again)
    for rel, digest in m['sha256'].items():
        assert synthetic.hashlib.sha256((again / rel).read_bytes()).hexdigest() == digest

    def images(manifest):  # masks may coincide (e.g. one class, no background)
        return {d for rel, d in manifest['sha256'].items() if '/mask/' not in rel}

    assert images(_manifest(other)).isdisjoint(images(m))


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / 'set'
    out.mkdir()
    (out / 'keep.txt').write_text('x')
    with pytest.raises(FileExistsError, match='not empty'):
        write_synthetic_dataset(out, **SMALL)
    assert (out / 'keep.txt').exists()
    write_synthetic_dataset(out, overwrite=True, **SMALL)
    assert not (out / 'keep.txt').exists() and (out / 'manifest.json').is_file()
    assert [p.name for p in tmp_path.iterdir()] == ['set']  # no temp dirs left behind


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError('disk full')

    monkeypatch.setattr(synthetic, '_build_manifest', boom)
    with pytest.raises(RuntimeError):
        write_synthetic_dataset(tmp_path / 'set', **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_default_root_generated_once_in_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(synthetic.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(synthetic, 'DEFAULT_SPLIT_SIZES', {'train': 4, 'val': 2, 'test': 2})
    monkeypatch.setattr(synthetic, 'DEFAULT_PATCH_SIZE', 48)
    root = synthetic.default_synthetic_root()
    assert root.parent == tmp_path
    assert f'v{synthetic.GENERATOR_VERSION}' in root.name and 'seed0' in root.name
    assert _manifest(root)['counts'] == {'train': 4, 'val': 2, 'test': 2}
    stamp = (root / 'manifest.json').stat().st_mtime_ns
    assert synthetic.default_synthetic_root() == root
    assert (root / 'manifest.json').stat().st_mtime_ns == stamp  # reused, not regenerated

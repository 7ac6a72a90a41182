import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lpd_bench.data import synthetic, synthetic_v3
from lpd_bench.data.bcss_meta import PALETTE
from lpd_bench.data.filenames import parse_train_label
from lpd_bench.data.synthetic import mask_label, write_synthetic_dataset

SMALL = dict(n_train=8, n_val=4, n_test=4, patch_size=64, version=2)


@pytest.fixture(scope='module')
def small_root(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp('synth') / 'set', seed=3, **SMALL)


def _manifest(root):
    return json.loads((Path(root) / 'manifest.json').read_text())


def test_layout_and_manifest_counts(small_root):
    m = _manifest(small_root)
    assert m['counts'] == {'train': 8, 'val': 4, 'test': 4}
    assert m['seed'] == 3 and m['patch_size'] == 64
    assert m['generator_version'] == 2
    assert 'knobs' not in m and not (small_root / 'submorphology').exists()  # v2 as before
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
    assert f'v{synthetic.DEFAULT_VERSION}' in root.name and 'seed0' in root.name
    assert _manifest(root)['counts'] == {'train': 4, 'val': 2, 'test': 2}
    stamp = (root / 'manifest.json').stat().st_mtime_ns
    assert synthetic.default_synthetic_root() == root
    assert (root / 'manifest.json').stat().st_mtime_ns == stamp  # reused, not regenerated


# ----------------------------------------------------------------------------- version 3

V3_SMALL = dict(n_train=6, n_val=3, n_test=5, patch_size=64, version=3)


@pytest.fixture(scope='module')
def v3_root(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp('synth3') / 'set', seed=3, **V3_SMALL)


#: sha256 over (relative path, decoded pixels) of every PNG of a tiny version-2 set, recorded
#: with the code before version 3 was added (pixels, not PNG bytes: zlib may differ by machine).
V2_TINY_PIXELS_SHA256 = '9219d191fd9ecc64db1ed9f6e8e78cc31cfcd3bcf018a54f30ad56ba807c7ce4'


def test_v2_pixels_unchanged(tmp_path):
    root = write_synthetic_dataset(tmp_path / 'v2', seed=3, n_train=4, n_val=2, n_test=2,
                                   patch_size=48, version=2)
    digest = synthetic.hashlib.sha256()
    for path in sorted(root.rglob('*.png')):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(np.asarray(Image.open(path)).tobytes())
    assert digest.hexdigest() == V2_TINY_PIXELS_SHA256


#: The same digest for a tiny version-3 set (default knobs), and the sha256 of its manifest
#: without the file digests, recorded before the LUAD-HistoSeg layout was added to the generator:
#: the BCSS-WSSS layout's output (names, pixels, palette, statistics) must not change.
V3_TINY_PIXELS_SHA256 = '8195bc5ffb7ec7ae444a5291b9ce662c23b5f4acf3611634f7d1d969b9cdcf7b'
V3_TINY_MANIFEST_SHA256 = '1496f6f46a67d8ad5d2794235ea92ef9fee50600282f6fcd34baf1791381b38b'


@pytest.mark.parametrize('layout', [{}, {'layout': 'bcss'}])
def test_v3_bcss_layout_unchanged(tmp_path, layout):
    root = write_synthetic_dataset(tmp_path / 'v3', seed=3, n_train=4, n_val=2, n_test=2,
                                   patch_size=48, version=3, **layout)
    digest = synthetic.hashlib.sha256()
    for path in sorted(root.rglob('*.png')):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(np.asarray(Image.open(path)).tobytes())
    assert digest.hexdigest() == V3_TINY_PIXELS_SHA256
    manifest = _manifest(root)
    manifest.pop('sha256')
    encoded = json.dumps(manifest, sort_keys=True).encode()
    assert synthetic.hashlib.sha256(encoded).hexdigest() == V3_TINY_MANIFEST_SHA256


def test_v3_layout_manifest_and_check(v3_root):
    from lpd_bench.data.validation import check_dataset
    m = _manifest(v3_root)
    assert m['generator_version'] == 3 and m['counts'] == {'train': 6, 'val': 3, 'test': 5}
    assert m['knobs'] == synthetic.Knobs().to_dict() and m['difficulty'] == 'default'
    assert m['submorphology']['folder'] == 'submorphology'
    assert check_dataset(v3_root) == []  # the side folder does not disturb the data check
    legend = json.loads((v3_root / 'submorphology' / 'legend.json').read_text())
    assert legend == synthetic_v3.submorphology_legend()
    assert legend['1'] == {'class': 'TUM', 'name': 'solid'}
    for cls in ('TUM', 'STR', 'LYM', 'NEC'):  # >= 2 sub-morphologies per class
        assert sum(v['class'] == cls for v in legend.values()) >= 2
    assert not (v3_root / 'submorphology' / 'train').exists()
    for split in ('val', 'test'):
        names = sorted(p.name for p in (v3_root / split / 'img').glob('*.png'))
        assert sorted(p.name for p in (v3_root / 'submorphology' / split).glob('*.png')) == names


def test_v3_submorphology_maps_follow_the_mask(v3_root):
    legend = json.loads((v3_root / 'submorphology' / 'legend.json').read_text())
    class_of = {int(k): ('TUM', 'STR', 'LYM', 'NEC').index(v['class']) for k, v in legend.items()}
    class_of[0] = 4
    for split in ('val', 'test'):
        for path in (v3_root / 'submorphology' / split).glob('*.png'):
            sub_img = Image.open(path)
            assert sub_img.mode == 'L'
            sub = np.asarray(sub_img)
            mask = np.asarray(Image.open(v3_root / split / 'mask' / path.name))
            assert sub.shape == mask.shape and set(np.unique(sub)) <= set(class_of)
            assert (np.vectorize(class_of.get)(sub) == mask).all()


def test_v3_deterministic_and_distinct_from_v2(tmp_path, v3_root):
    again = write_synthetic_dataset(tmp_path / 'again', seed=3, **V3_SMALL)
    assert (again / 'manifest.json').read_bytes() == (v3_root / 'manifest.json').read_bytes()
    v2 = write_synthetic_dataset(tmp_path / 'v2', seed=3, **{**V3_SMALL, 'version': 2})
    images = lambda m: {d for rel, d in m['sha256'].items() if '/img/' in rel or 'train/' in rel}
    assert images(_manifest(v2)).isdisjoint(images(_manifest(again)))


def test_v3_knobs_change_the_pixels_and_the_maps():
    base = synthetic.Knobs()

    def patch(knobs, i=1):
        slide = synthetic.split_slides(0, 'train', 4, 3, knobs)[0]
        return synthetic.generate_patch_v3(0, 'train', i, 96, slide, knobs)

    rgb, mask, _ = patch(base)
    for change in (dict(lookalike=0.2), dict(stain_variation=0.3), dict(heterogeneity=0.0),
                   dict(mix_scale=20.0)):
        rgb2, mask2, _ = patch(replace(base, **change))
        assert (mask2 == mask).all() and not (rgb2 == rgb).all(), change

    def sub_per_region(heterogeneity):  # sub-morphologies in each class region of 6 patches
        knobs = replace(base, heterogeneity=heterogeneity)
        maps = [patch(knobs, i)[1:] for i in range(6)]
        return [len(np.unique(sub[mask == c])) for mask, sub in maps
                for c in np.unique(mask) if c < 4]

    assert set(sub_per_region(0.0)) == {1}  # one per region, as in version 2
    assert np.mean(np.array(sub_per_region(1.0)) >= 2) > 0.6  # mixed in most regions


def test_v3_lookalike_pulls_colour_statistics_together():
    """Block colour features of every sub-morphology are equal at look-alike 1 (reference stain),
    and far apart at 0."""
    feats = {}
    for lam in (0.0, 1.0):
        rows = []
        for c, textures in enumerate(synthetic_v3.TEXTURES):
            for texture in textures:
                rng = np.random.default_rng(c)
                h, e = (np.asarray(t, np.float32) for t in texture(rng, 96))
                rows.append(synthetic_v3.block_colour_features(*synthetic_v3.lookalike(h, e, lam)))
        feats[lam] = np.array(rows)
    spread = {lam: f.std(0) for lam, f in feats.items()}
    assert (spread[1.0] < 1.5).all() and spread[0.0][:3].min() > 10


def test_v3_cache_name_has_version_and_knobs(tmp_path, monkeypatch):
    monkeypatch.setenv(synthetic.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(synthetic, 'SPLIT_SIZES', {**synthetic.SPLIT_SIZES,
                                                   3: {'train': 2, 'val': 1, 'test': 1}})
    monkeypatch.setattr(synthetic, 'DEFAULT_SPLIT_SIZES', {'train': 2, 'val': 1, 'test': 1})
    monkeypatch.setattr(synthetic, 'DEFAULT_PATCH_SIZE', 32)
    hard = synthetic_v3.DIFFICULTIES['hard']
    root = synthetic.default_synthetic_root(version=3, knobs=hard)
    assert root.name == f'synthetic-v3-seed0-32px-2-1-1-{hard.tag()}'
    assert _manifest(root)['difficulty'] == 'hard'
    default = synthetic.default_synthetic_root(version=3)
    assert default != root and default.name.endswith(synthetic.Knobs().tag())
    # version 2's cache folder keeps its name
    assert (synthetic.synthetic_root_name(0, 2, synthetic.SPLIT_SIZES[2], 224) ==
            'synthetic-v2-seed0-224px-480-64-128')


def test_v3_default_test_split_is_large():
    assert synthetic.SPLIT_SIZES[3]['test'] >= 512 and synthetic.SPLIT_SIZES[2]['test'] == 128


def test_cli_version_difficulty_and_knobs(tmp_path, capsys):
    from lpd_bench.cli import main as cli
    sizes = ['--n-train', '2', '--n-val', '1', '--n-test', '1', '--patch-size', '32']
    out = tmp_path / 'hard'
    assert cli(['data', 'synth', '--out', str(out), '--version', '3', '--difficulty', 'hard',
                '--lookalike', '0.5', *sizes]) == 0
    m = _manifest(out)
    assert m['generator_version'] == 3 and m['difficulty'] == 'custom'
    assert m['knobs'] == {**synthetic_v3.DIFFICULTIES['hard'].to_dict(), 'lookalike': 0.5}
    assert cli(['data', 'synth', '--out', str(tmp_path / 'v2'), '--version', '2', *sizes]) == 0
    assert _manifest(tmp_path / 'v2')['generator_version'] == 2
    assert cli(['data', 'synth', '--out', str(tmp_path / 'default'), *sizes]) == 0
    assert _manifest(tmp_path / 'default')['generator_version'] == synthetic.DEFAULT_VERSION == 3
    assert cli(['data', 'synth', '--out', str(tmp_path / 'bad'), '--version', '2', '--lookalike',
                '1', *sizes]) == 2
    assert cli(['data', 'synth', '--out', str(tmp_path / 'bad'), '--version', '3',
                '--heterogeneity', '2', *sizes]) == 2
    assert 'version 3 only' in capsys.readouterr().err

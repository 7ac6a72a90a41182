"""LUAD-HistoSeg as a second dataset layout: name parser, dataset, data stats, layout detection,
the LUAD form of the synthetic set, and the metric's class names."""
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from PIL import Image

from lpd_bench.cli import main as cli_main
from lpd_bench.data import synthetic
from lpd_bench.data.bcss_dataset import BCSSWSSSDataset
from lpd_bench.data.channel_stats import channel_stats, read_bgr
from lpd_bench.data.filenames import TrainLabelError, parse_train_label
from lpd_bench.data.layouts import BCSS, LUAD, naming_of
from lpd_bench.data.luad_dataset import LUADHistoSegDataset
from lpd_bench.data.luad_filenames import format_luad_train_name, parse_luad_train_label
from lpd_bench.data.validation import DatasetError, check_dataset, detect_layout

TINY = dict(seed=3, n_train=8, n_val=4, n_test=4, patch_size=64)
LUAD_CLASSES = ('TE', 'NEC', 'LYM', 'TAS', 'BG')
LUAD_PALETTE = [(205, 51, 51), (0, 255, 0), (65, 105, 225), (255, 165, 0), (255, 255, 255)]
#: Generated classes TUM, STR, LYM, NEC stand in for TE, TAS, LYM, NEC: LUAD value of BCSS value.
LUAD_OF_BCSS = [0, 3, 2, 1, 4]


@pytest.fixture(scope='module', autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


@pytest.fixture(scope='module')
def luad_root(tmp_path_factory):
    """A tiny LUAD-layout synthetic set (read-only, shared)."""
    return synthetic.write_synthetic_dataset(tmp_path_factory.mktemp('luad') / 'LUAD-HistoSeg',
                                             layout='luad', **TINY)


@pytest.fixture(scope='module')
def bcss_root(tmp_path_factory):
    """The BCSS-layout set of the same seed and sizes (read-only, shared)."""
    return synthetic.write_synthetic_dataset(tmp_path_factory.mktemp('bcss') / 'BCSS-WSSS', **TINY)


def _by_pixels(folder):
    """{sha256 of the decoded pixels: path} of the PNGs of ``folder``."""
    return {hashlib.sha256(np.asarray(Image.open(p)).tobytes()).hexdigest(): p
            for p in sorted(Path(folder).glob('*.png'))}


# ----------------------------------------------------------------------------- name parser

REAL_NAMES = {
    '1031280-2300-27920-[1 0 0 1].png': [1, 0, 0, 1],
    '1031280-2300-27696-[0 1 0 0].png': [0, 1, 0, 0],
    '1122393-19276-41184-[1 1 1 1].png': [1, 1, 1, 1],
    '1122393-19276-41408-[0 0 1 0].png': [0, 0, 1, 0],
}


@pytest.mark.parametrize('name,expected', REAL_NAMES.items())
def test_parses_real_luad_names(name, expected):
    label = parse_luad_train_label(name)
    assert label.dtype == np.int64 and label.shape == (4, )
    assert label.tolist() == expected


def test_te_and_tas_example_means_classes_te_and_tas():
    label = parse_luad_train_label('1031280-2300-27920-[1 0 0 1].png')
    assert [c for c, flag in zip(LUAD_CLASSES, label) if flag] == ['TE', 'TAS']


def test_luad_folders_with_brackets_are_ignored():
    path = '/data/[1 1 1 1]/run[0000]/LUAD [v2]/train/1031280-2300-27920-[0 1 0 0].png'
    assert parse_luad_train_label(path).tolist() == [0, 1, 0, 0]
    assert parse_luad_train_label(Path(path)).tolist() == [0, 1, 0, 0]


def test_luad_last_group_counts():
    assert parse_luad_train_label('a[1 1 1 1]b-[0 0 1 0].png').tolist() == [0, 0, 1, 0]


@pytest.mark.parametrize('name,fragment', [
    ('1031280-2300-27920.png', 'no [a b c d] label group'),
    ('1031280-2300-27920-[1 0 1].png', 'has 3 flags, expected 4 flags of 0/1'),
    ('1031280-2300-27920-[1 0 1 0 1].png', 'has 5 flags'),
    ('1031280-2300-27920-[].png', 'has 0 flags'),
    ('1031280-2300-27920-[1 2 0 1].png', 'other than 0/1'),
    ('1031280-2300-27920-[1 a 0 1].png', 'other than 0/1'),
    ('1031280-2300-27920-[0 0 0 0].png', 'all zero'),
    ('1031280-2300-27920-[1  0 0 1].png', 'not spaced as 4 flags'),
    ('1031280-2300-27920-[ 1 0 0 1].png', 'not spaced as 4 flags'),
    ('1031280-2300-27920-[1\t0 0 1].png', 'not spaced as 4 flags'),
    ('1031280-2300-27920-[10 0 1].png', 'not spaced as 4 flags'),
    ('1031280-2300-27920-[101].png', 'no spaces between its flags'),
    ('TCGA-A1-A0SK-DX1_xmin1_ymin2_MPP-0.2500+0[1101].png', 'looks like BCSS-WSSS naming'),
])
def test_bad_luad_names_raise_with_file_and_reason(name, fragment):
    with pytest.raises(TrainLabelError) as info:
        parse_luad_train_label('/some/dir/' + name)
    assert isinstance(info.value, ValueError)
    assert info.value.path == '/some/dir/' + name and fragment in info.value.problem
    assert str(info.value) == f'/some/dir/{name}: {info.value.problem}'


def test_bcss_parser_unchanged_and_still_refuses_luad_names():
    assert parse_train_label('TCGA-A1-A0SK-DX1_xmin1_ymin2_MPP-0.2500+0[1101].png').tolist() == [
        1, 1, 0, 1]
    with pytest.raises(TrainLabelError, match='looks like LUAD-HistoSeg naming'):
        parse_train_label('1031280-2300-27920-[1 0 0 1].png')


def test_format_is_inverse_of_parse():
    name = format_luad_train_name('1031280', 2300, 27920, [1, 0, 0, 1])
    assert name == '1031280-2300-27920-[1 0 0 1].png'
    assert parse_luad_train_label(name).tolist() == [1, 0, 0, 1]


@pytest.mark.parametrize('patient,x,y,label', [
    ('', 0, 0, [1, 0, 0, 0]), ('1[2]', 0, 0, [1, 0, 0, 0]), ('1 2', 0, 0, [1, 0, 0, 0]),
    ('1', -1, 0, [1, 0, 0, 0]), ('1', 0, 0, [0, 0, 0, 0]), ('1', 0, 0, [1, 0, 2, 0]),
    ('1', 0, 0, [1, 0, 0])])
def test_format_rejects_bad_input(patient, x, y, label):
    with pytest.raises(ValueError):
        format_luad_train_name(patient, x, y, label)


def test_naming_of_tells_the_layouts_apart():
    assert naming_of('/d/[1 1]/1031280-2300-27920-[1 0 0 1].png') is LUAD
    assert naming_of('/d/[1 1]/TCGA-A1+0[1101].png') is BCSS
    assert naming_of('/d/[1 1]/x.png') is None


# ----------------------------------------------------------------------------- the generator

def test_luad_layout_names_classes_and_manifest(luad_root):
    m = json.loads((luad_root / 'manifest.json').read_text())
    assert m['layout'] == 'luad' and m['classes'] == list(LUAD_CLASSES)
    assert [tuple(rgb) for rgb in m['palette']] == LUAD_PALETTE
    assert m['stand_in'] == {'TUM': 'TE', 'STR': 'TAS', 'LYM': 'LYM', 'NEC': 'NEC', 'BG': 'BG'}
    assert 'LUAD-HistoSeg' in m['note'] and m['counts'] == {'train': 8, 'val': 4, 'test': 4}
    train = sorted((luad_root / 'train').glob('*.png'))
    assert len(train) == 8
    for path in train:
        patient, x, y, rest = path.name.split('-', 3)
        assert len(patient) == 7 and patient.isdigit() and x.isdigit() and y.isdigit()
        assert rest.startswith('[') and rest.endswith('].png')
    labels = np.array([parse_luad_train_label(p) for p in train])
    assert [m['splits']['train']['image_level'][c] for c in LUAD_CLASSES[:4]] == \
        labels.sum(0).tolist()
    for split in ('val', 'test'):
        images = sorted(p.name for p in (luad_root / split / 'img').glob('*.png'))
        assert images == sorted(p.name for p in (luad_root / split / 'mask').glob('*.png'))
        assert all(name.count('-') == 2 and '[' not in name for name in images)


def test_luad_layout_is_the_bcss_pixels_relabelled(luad_root, bcss_root):
    """Same images; labels and masks in LUAD's order TE, NEC, LYM, TAS; LUAD's palette."""
    luad, bcss = _by_pixels(luad_root / 'train'), _by_pixels(bcss_root / 'train')
    assert set(luad) == set(bcss) and len(luad) == 8
    for digest, path in luad.items():
        tum, str_, lym, nec = parse_train_label(bcss[digest]).tolist()
        assert parse_luad_train_label(path).tolist() == [tum, nec, lym, str_]
    for split in ('val', 'test'):
        luad, bcss = _by_pixels(luad_root / split / 'img'), _by_pixels(bcss_root / split / 'img')
        assert set(luad) == set(bcss)
        for digest, path in luad.items():
            mask = Image.open(luad_root / split / 'mask' / path.name)
            assert mask.mode == 'P' and mask.getpalette()[:15] == [v for rgb in LUAD_PALETTE
                                                                   for v in rgb]
            bcss_mask = np.asarray(Image.open(bcss_root / split / 'mask' / bcss[digest].name))
            assert (np.asarray(mask) == np.array(LUAD_OF_BCSS)[bcss_mask]).all()


def test_luad_submorphology_legend_follows_the_luad_mask(luad_root):
    legend = json.loads((luad_root / 'submorphology' / 'legend.json').read_text())
    assert legend['1'] == {'class': 'TE', 'name': 'solid'}
    assert {v['class'] for v in legend.values()} == set(LUAD_CLASSES[:4])
    class_of = {int(k): LUAD_CLASSES.index(v['class']) for k, v in legend.items()}
    class_of[0] = 4
    for path in (luad_root / 'submorphology' / 'test').glob('*.png'):
        sub = np.asarray(Image.open(path))
        mask = np.asarray(Image.open(luad_root / 'test' / 'mask' / path.name))
        assert (np.vectorize(class_of.get)(sub) == mask).all()


def test_luad_generation_is_deterministic_and_v2_works(tmp_path, luad_root):
    again = synthetic.write_synthetic_dataset(tmp_path / 'again', layout='luad', **TINY)
    assert (again / 'manifest.json').read_bytes() == (luad_root / 'manifest.json').read_bytes()
    v2 = synthetic.write_synthetic_dataset(tmp_path / 'v2', layout='luad', version=2, **TINY)
    assert json.loads((v2 / 'manifest.json').read_text())['layout'] == 'luad'
    assert check_dataset(v2) == [] and detect_layout(v2).layout is LUAD


def test_unknown_layout_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset layout 'lung'"):
        synthetic.write_synthetic_dataset(tmp_path / 'x', layout='lung', **TINY)


def test_cache_names_bcss_unchanged_luad_its_own():
    sizes = synthetic.SPLIT_SIZES[3]
    assert (synthetic.synthetic_root_name(0, 3, sizes, 224) ==
            'synthetic-v3-seed0-224px-480-128-512-het0.75-look0.85-stain1-mix40')
    assert (synthetic.synthetic_root_name(0, 3, sizes, 224, layout='luad') ==
            'synthetic-luad-v3-seed0-224px-480-128-512-het0.75-look0.85-stain1-mix40')
    assert (synthetic.synthetic_root_name(0, 2, synthetic.SPLIT_SIZES[2], 224, layout='luad') ==
            'synthetic-luad-v2-seed0-224px-480-64-128')


def test_cli_synth_layout(tmp_path, capsys):
    sizes = ['--n-train', '3', '--n-val', '1', '--n-test', '1', '--patch-size', '32']
    assert cli_main(['data', 'synth', '--out', str(tmp_path / 'l'), '--layout', 'luad',
                     *sizes]) == 0
    assert json.loads((tmp_path / 'l' / 'manifest.json').read_text())['layout'] == 'luad'
    assert all(naming_of(p) is LUAD for p in (tmp_path / 'l' / 'train').glob('*.png'))
    assert cli_main(['data', 'synth', '--out', str(tmp_path / 'b'), *sizes]) == 0  # default
    manifest = json.loads((tmp_path / 'b' / 'manifest.json').read_text())
    assert 'layout' not in manifest and manifest['classes'][0] == 'TUM'
    with pytest.raises(SystemExit):
        cli_main(['data', 'synth', '--out', str(tmp_path / 'x'), '--layout', 'lung', *sizes])


# ----------------------------------------------------------------------------- the dataset

def test_luad_dataset_is_registered_with_luad_metainfo(luad_root):
    from mmseg.registry import DATASETS
    ds = DATASETS.build(dict(type='LUADHistoSegDataset', data_root=str(luad_root), split='train'))
    assert isinstance(ds, LUADHistoSegDataset) and len(ds) == 8
    assert ds.metainfo['classes'] == LUAD_CLASSES
    assert [tuple(rgb) for rgb in ds.metainfo['palette']] == LUAD_PALETTE
    assert BCSSWSSSDataset.METAINFO['classes'] == ('TUM', 'STR', 'LYM', 'NEC', 'BG')


def test_luad_train_labels_from_names(luad_root):
    ds = LUADHistoSegDataset(str(luad_root), 'train')
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['seg_map_path'] is None and info['img_label'].dtype == np.int64
        assert info['img_label'].tolist() == parse_luad_train_label(info['img_path']).tolist()


@pytest.mark.parametrize('split', ['val', 'test'])
def test_luad_annotated_split_labels_and_masks(luad_root, split):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                dict(type='PackWSSSInputs')]
    ds = LUADHistoSegDataset(str(luad_root), split, pipeline=pipeline)
    assert len(ds) == 4
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        mask = np.asarray(Image.open(info['seg_map_path']))
        assert info['img_label'].tolist() == [int((mask == c).any()) for c in range(4)]
        sample = ds[i]['data_samples']
        assert (sample.gt_sem_seg.data[0].numpy() == mask).all()
        assert list(sample.metainfo['img_label']) == info['img_label'].tolist()


def test_luad_valid_folder(luad_root, tmp_path):
    copy = shutil.copytree(luad_root, tmp_path / 'set')
    (copy / 'val').rename(copy / 'valid')
    assert len(LUADHistoSegDataset(str(copy), 'val')) == 4


def test_each_dataset_refuses_the_other_layout(luad_root, bcss_root):
    with pytest.raises(DatasetError) as info:
        LUADHistoSegDataset(str(bcss_root), 'train')
    assert str(info.value).count('looks like BCSS-WSSS naming') == 8
    with pytest.raises(DatasetError) as info:
        BCSSWSSSDataset(str(luad_root), 'train')
    assert str(info.value).count('looks like LUAD-HistoSeg naming') == 8
    with pytest.raises(DatasetError, match='1 problem') as info:
        LUADHistoSegDataset(str(bcss_root), 'train', validate=True)
    assert 'holds BCSS-WSSS train names' in str(info.value)
    assert 'expects LUAD-HistoSeg (<patient>-<x>-<y>-[a b c d].png)' in str(info.value)


def test_none_root_uses_the_default_luad_set(tmp_path, monkeypatch):
    monkeypatch.setenv(synthetic.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(synthetic, 'DEFAULT_SPLIT_SIZES', {'train': 3, 'val': 2, 'test': 2})
    monkeypatch.setattr(synthetic, 'DEFAULT_PATCH_SIZE', 48)
    ds = LUADHistoSegDataset(None, 'test')
    root = Path(ds.data_root)
    assert len(ds) == 2 and root.parent == tmp_path
    assert root.name.startswith('synthetic-luad-v3-seed0-48px-3-2-2-')
    assert json.loads((root / 'manifest.json').read_text())['layout'] == 'luad'
    assert synthetic.default_synthetic_root().name.startswith('synthetic-v3-seed0-48px-3-2-2-')


# ----------------------------------------------------------------------------- layout detection

@pytest.fixture
def luad_copy(luad_root, tmp_path):
    return shutil.copytree(luad_root, tmp_path / 'set')


def test_detects_each_layout_from_train_names(luad_root, bcss_root):
    luad, bcss = detect_layout(luad_root), detect_layout(bcss_root)
    assert luad.layout is LUAD and luad.source == 'train file names' and not luad.mixed
    assert bcss.layout is BCSS and bcss.counts == {'bcss': 8}
    assert str(luad) == 'LUAD-HistoSeg (from 8 train file names)'
    assert str(bcss) == 'BCSS-WSSS (from 8 train file names)'
    assert check_dataset(luad_root) == [] and check_dataset(bcss_root) == []


def test_without_train_names_manifest_then_default(luad_copy):
    for path in (luad_copy / 'train').glob('*.png'):
        path.unlink()
    finding = detect_layout(luad_copy)
    assert finding.layout is LUAD and finding.source == 'manifest.json'
    (luad_copy / 'manifest.json').unlink()
    finding = detect_layout(luad_copy)
    assert finding.layout is BCSS and 'default' in str(finding)
    assert detect_layout(luad_copy / 'missing').layout is BCSS


def test_mixed_namings_are_one_problem_naming_an_example_of_each(luad_copy, bcss_root):
    bcss_file = sorted((bcss_root / 'train').glob('*.png'))[0]
    shutil.copy(bcss_file, luad_copy / 'train' / bcss_file.name)
    luad_first = sorted((luad_copy / 'train').glob('[0-9]*.png'))[0]
    finding = detect_layout(luad_copy)
    assert finding.mixed and finding.layout is LUAD and finding.counts == {'luad': 8, 'bcss': 1}
    problems = check_dataset(luad_copy, ['train'])
    assert len(problems) == 1 and problems[0].path == str(luad_copy / 'train')
    message = problems[0].message
    assert 'mixes the train namings of both layouts' in message
    assert str(luad_copy / 'train' / bcss_file.name) in message and str(luad_first) in message
    assert 'BCSS-WSSS, 1 file(s)' in message and 'LUAD-HistoSeg, 8 file(s)' in message


def test_bad_luad_names_are_read_with_the_luad_parser(luad_copy):
    path = sorted((luad_copy / 'train').glob('*.png'))[0]
    bad = path.with_name(path.name[:path.name.rindex('[')] + '[0 0 0 0].png')
    path.rename(bad)
    problems = check_dataset(luad_copy, ['train'])
    assert [(p.path, p.message) for p in problems] == [
        (str(bad), 'label [0 0 0 0] is all zero: a training patch needs at least one tissue '
         'class')]


def test_expected_layout_mismatch_is_one_problem(luad_root):
    problems = check_dataset(luad_root, ['train'], layout='bcss')
    assert len(problems) == 1
    assert 'holds LUAD-HistoSeg train names' in problems[0].message
    assert 'expects BCSS-WSSS' in problems[0].message


def test_cli_check_says_which_layout(luad_root, luad_copy, bcss_root, capsys):
    assert cli_main(['data', 'check', str(luad_root)]) == 0
    out = capsys.readouterr().out
    assert f'{luad_root}: layout LUAD-HistoSeg (from 8 train file names)' in out
    assert 'no problems' in out
    assert cli_main(['data', 'check', str(bcss_root)]) == 0
    assert 'layout BCSS-WSSS (from 8 train file names)' in capsys.readouterr().out
    shutil.copy(sorted((bcss_root / 'train').glob('*.png'))[0], luad_copy / 'train')
    assert cli_main(['data', 'check', str(luad_copy), '--splits', 'train']) == 1
    out = capsys.readouterr().out
    assert 'layout mixed: 1 BCSS-WSSS train names' in out and 'mixes the train namings' in out


# ----------------------------------------------------------------------------- data stats

def _numpy_stats(root):
    """Mean and std per channel (B, G, R) over all train pixels, all images in memory."""
    images = [np.asarray(Image.open(p).convert('RGB'))[..., ::-1]
              for p in sorted((Path(root) / 'train').glob('*.png'))]
    pixels = np.concatenate([im.reshape(-1, 3) for im in images]).astype(np.float64)
    return pixels.mean(0), pixels.std(0)


def test_channel_stats_equal_numpy_and_stream(luad_root):
    paths = sorted((luad_root / 'train').glob('*.png'))
    seen = []
    stats = channel_stats((p for p in paths), progress=seen.append)  # a one-pass iterator
    mean, std = _numpy_stats(luad_root)
    assert seen == list(range(1, 9)) and stats.images == 8 and stats.pixels == 8 * 64 * 64
    np.testing.assert_allclose(stats.mean_255, mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(stats.std_255, std, rtol=0, atol=1e-9)
    np.testing.assert_allclose(stats.mean_01, mean / 255, rtol=0, atol=1e-12)
    assert stats.mean_255[0] != stats.mean_255[2]  # B and R differ: the order is tested


def test_read_bgr_is_what_the_loader_reads(luad_root):
    from mmcv.transforms import LoadImageFromFile
    path = sorted((luad_root / 'train').glob('*.png'))[0]
    loaded = LoadImageFromFile()(dict(img_path=str(path)))['img']
    assert (read_bgr(path) == loaded).all()
    assert (read_bgr(path) == np.asarray(Image.open(path))[..., ::-1]).all()


def _printed_list(out, key):
    line = next(line for line in out.splitlines() if line.startswith(f'{key}=['))
    return np.array([float(v) for v in line[len(key) + 2:-2].split(',')])


@pytest.mark.parametrize('which', ['luad', 'bcss'])
def test_cli_stats_prints_config_lines(which, luad_root, bcss_root, capsys):
    root = luad_root if which == 'luad' else bcss_root
    assert cli_main(['data', 'stats', str(root)]) == 0
    captured = capsys.readouterr()
    mean, std = _numpy_stats(root)
    np.testing.assert_allclose(_printed_list(captured.out, 'mean'), mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(_printed_list(captured.out, 'std'), std, rtol=0, atol=1e-6)
    line01 = next(line for line in captured.out.splitlines() if line.startswith('mean (0..1'))
    np.testing.assert_allclose([float(v) for v in line01.split(':')[1].split(',')], mean / 255,
                               rtol=0, atol=1e-8)
    assert 'B, G, R' in captured.out and f'layout {detect_layout(root).layout.title}' in \
        captured.out
    assert '8/8 images' in captured.err  # progress


def test_cli_stats_errors_name_the_problem(luad_copy, tmp_path, capsys):
    assert cli_main(['data', 'stats', str(tmp_path / 'nowhere')]) == 2
    assert 'dataset folder does not exist' in capsys.readouterr().err
    corrupt = sorted((luad_copy / 'train').glob('*.png'))[3]
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    assert cli_main(['data', 'stats', str(luad_copy)]) == 2
    err = capsys.readouterr().err
    assert f'{corrupt}: unreadable image' in err
    for path in (luad_copy / 'train').glob('*.png'):
        path.unlink()
    assert cli_main(['data', 'stats', str(luad_copy)]) == 2
    assert 'train split has no PNG images' in capsys.readouterr().err
    shutil.rmtree(luad_copy / 'train')
    assert cli_main(['data', 'stats', str(luad_copy)]) == 2
    assert 'missing split folder' in capsys.readouterr().err


# ----------------------------------------------------------------------------- the metric

def _metric_sample(gt, pred):
    from mmseg.structures import SegDataSample
    data = SegDataSample(metainfo=dict(img_path='a.png', protocol=dict(gating='oracle')))
    data.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    data.set_data({'pred_sem_seg_oracle': PixelData(data=torch.as_tensor(pred)[None])})
    return data.to_dict()


@pytest.mark.parametrize('meta,names', [(LUADHistoSegDataset.METAINFO, LUAD_CLASSES),
                                        (None, ('TUM', 'STR', 'LYM', 'NEC', 'BG'))])
def test_metric_class_names_follow_the_dataset(meta, names, tmp_path):
    from lpd_bench.evaluation.wsss_metric import WSSSMetric
    metric = WSSSMetric(output_file=str(tmp_path / 'm.json'))
    if meta is not None:
        metric.dataset_meta = meta
    gt = np.array([[0, 1, 2, 3, 4, 4]])
    metric.process({}, [_metric_sample(gt, np.array([[0, 1, 2, 0, 4, 4]]))])
    flat = metric.evaluate(1)
    assert flat['oracle/bg_counted/IoU.' + names[0]] == 50.0  # 1 TP, 1 FP
    assert flat['oracle/bg_counted/IoU.' + names[3]] == 0.0
    assert flat['oracle/bg_counted/IoU.' + names[4]] == 100.0
    written = json.loads((tmp_path / 'm.json').read_text())
    assert written['classes'] == list(names)
    assert list(written['results']['oracle']['bg_ignored']['IoU']) == list(names[:4])


# ----------------------------------------------------------------------------- the config

def test_luad_config_builds_its_datasets(luad_root):
    from mmengine.config import Config
    from mmseg.registry import DATASETS
    from helpers import REPO
    cfg = Config.fromfile(str(REPO / 'configs' / '_base_' / 'datasets' / 'luad_histoseg.py'))
    assert cfg.data_root == 'data/LUAD-HistoSeg'
    assert 'lpd-bench data stats' in Path(cfg.filename).read_text()
    assert cfg.data_preprocessor.bgr_to_rgb is False and cfg.val_evaluator.type == 'WSSSMetric'
    for name, split, count in (('train_dataloader', 'train', 8), ('val_dataloader', 'val', 4),
                               ('test_dataloader', 'test', 4)):
        dataset = cfg[name].dataset.to_dict()
        assert dataset['type'] == 'LUADHistoSegDataset' and dataset['split'] == split
        built = DATASETS.build(dict(dataset, data_root=str(luad_root)))
        assert len(built) == count and built.metainfo['classes'] == LUAD_CLASSES

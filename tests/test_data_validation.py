import shutil

import numpy as np
import pytest
from PIL import Image

from lpd_bench.cli import main as cli_main
from lpd_bench.data.synthetic import write_synthetic_dataset
from lpd_bench.data.validation import (DatasetError, assert_valid_dataset, check_dataset,
                                       split_dir)


@pytest.fixture(scope='module')
def clean_root(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp('check') / 'set', seed=1, n_train=8,
                                   n_val=4, n_test=4, patch_size=64)


@pytest.fixture
def root(clean_root, tmp_path):
    """A fresh copy of the clean set to break."""
    return shutil.copytree(clean_root, tmp_path / 'set')


def _first(folder):
    return sorted(folder.glob('*.png'))[0]


def _messages(problems):
    return {p.path: p.message for p in problems}


def test_clean_set_has_no_problems(clean_root):
    assert check_dataset(clean_root) == []
    assert_valid_dataset(clean_root)


def _rename_train(root, new_label):
    path = _first(root / 'train')
    new = path.with_name(path.name[:path.name.rindex('[')] + new_label + '.png')
    path.rename(new)
    return new


@pytest.mark.parametrize('label,fragment', [('[0000]', 'all zero'), ('[1201]', 'other than 0/1'),
                                            ('', 'no [abcd] label'), ('[101]', '3 characters')])
def test_bad_train_label(root, label, fragment):
    path = _rename_train(root, label)
    problems = check_dataset(root, ['train'])
    assert len(problems) == 1 and fragment in _messages(problems)[str(path)]


def test_corrupt_wrong_size_and_grey_images(root):
    corrupt = _first(root / 'val' / 'img')
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    small = sorted((root / 'test' / 'img').glob('*.png'))[0]
    Image.open(small).resize((32, 32)).save(small)
    grey = sorted((root / 'test' / 'img').glob('*.png'))[1]
    Image.open(grey).convert('L').save(grey)
    msgs = _messages(check_dataset(root))
    assert 'corrupt' in msgs[str(corrupt)]
    assert 'is 32x32 pixels, expected 64x64' in msgs[str(small)]
    assert 'mask is 64x64 but its image is 32x32' in msgs[str(root / 'test' / 'mask' / small.name)]
    assert 'expected 3-channel RGB' in msgs[str(grey)]


def test_patch_size_argument_overrides_manifest(clean_root):
    problems = check_dataset(clean_root, ['test'], patch_size=224)
    assert len(problems) == 4 and all('expected 224x224' in p.message for p in problems)


def test_missing_mask_orphan_mask_and_bad_values(root):
    img = _first(root / 'val' / 'img')
    (root / 'val' / 'mask' / img.name).unlink()
    orphan = root / 'test' / 'mask' / 'extra+0.png'
    shutil.copy(_first(root / 'test' / 'mask'), orphan)
    bad = sorted((root / 'test' / 'mask').glob('TCGA*.png'))[1]
    values = np.asarray(Image.open(bad)).copy()
    values[:2, :2] = 9
    Image.fromarray(values).save(bad)
    msgs = _messages(check_dataset(root))
    assert 'image without mask' in msgs[str(img)]
    assert msgs[str(orphan)] == 'mask without image'
    assert 'mask values [9] outside 0..4' in msgs[str(bad)]
    assert len(msgs) == 3  # all problems reported, nothing else


def test_missing_empty_and_duplicate_splits(root):
    shutil.rmtree(root / 'test')
    for p in (root / 'train').glob('*.png'):
        p.unlink()
    shutil.copytree(root / 'val', root / 'valid')
    msgs = _messages(check_dataset(root))
    assert 'missing split' in msgs[str(root / 'test')]
    assert 'no PNG images' in msgs[str(root / 'train')]
    assert 'both val/ and valid/' in msgs[str(root)]
    with pytest.raises(DatasetError, match='3 problem'):
        assert_valid_dataset(root)


def test_valid_folder_accepted(root):
    (root / 'val').rename(root / 'valid')
    assert check_dataset(root) == []
    assert split_dir(root, 'val') == root / 'valid'


def test_cli_check_exit_codes(clean_root, root, capsys):
    assert cli_main(['data', 'check', str(clean_root)]) == 0
    assert 'no problems' in capsys.readouterr().out
    path = _rename_train(root, '[0000]')
    assert cli_main(['data', 'check', str(root), '--splits', 'train']) == 1
    out = capsys.readouterr().out
    assert f'{path}: ' in out and '1 problem(s)' in out


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / 'set'
    args = ['data', 'synth', '--out', str(out), '--seed', '2', '--n-train', '3', '--n-val', '2',
            '--n-test', '2', '--patch-size', '48']
    assert cli_main(args) == 0
    assert 'wrote' in capsys.readouterr().out
    assert check_dataset(out) == []
    assert cli_main(args) == 2  # refuses to overwrite
    assert 'not empty' in capsys.readouterr().err
    assert cli_main(args + ['--overwrite']) == 0

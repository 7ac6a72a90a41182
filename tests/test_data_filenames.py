import numpy as np
import pytest

from lpd_bench.data.filenames import TrainLabelError, format_train_name, parse_train_label

REAL_NAMES = {
    'TCGA-A1-A0SK-DX1_xmin45749_ymin25055_MPP-0.2500+0[1101].png': [1, 1, 0, 1],
    'TCGA-A2-A0CM-DX1_xmin18562_ymin56852_MPP-0.2500+12[0100].png': [0, 1, 0, 0],
    'TCGA-OL-A66I-DX1_xmin7322_ymin31512_MPP-0.2500+153[0011].png': [0, 0, 1, 1],
}


@pytest.mark.parametrize('name,expected', REAL_NAMES.items())
def test_parses_real_names(name, expected):
    label = parse_train_label(name)
    assert label.dtype == np.int64 and label.shape == (4, )
    assert label.tolist() == expected


def test_directories_with_brackets_are_ignored():
    path = '/data/[0000]/run[12]/train/TCGA-A1-A0SK-DX1_xmin1_ymin2_MPP-0.2500+3[0010].png'
    assert parse_train_label(path).tolist() == [0, 0, 1, 0]


def test_last_group_counts():
    assert parse_train_label('a[0000]b+1[1000].png').tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize('name,fragment', [
    ('TCGA-A1-A0SK+0.png', 'no [abcd] label group'),
    ('TCGA-A1-A0SK+0[110].png', 'has 3 characters'),
    ('TCGA-A1-A0SK+0[11011].png', 'has 5 characters'),
    ('TCGA-A1-A0SK+0[1201].png', 'other than 0/1'),
    ('TCGA-A1-A0SK+0[1a01].png', 'other than 0/1'),
    ('TCGA-A1-A0SK+0[0000].png', 'all zero'),
    ('TCGA-55-1594+0[1 0 1 0].png', 'LUAD-HistoSeg'),
])
def test_bad_names_raise_with_file_and_reason(name, fragment):
    with pytest.raises(TrainLabelError) as info:
        parse_train_label('/some/dir/' + name)
    assert isinstance(info.value, ValueError)
    assert name in str(info.value) and fragment in str(info.value)


def test_format_is_inverse_of_parse():
    stem = 'TCGA-A1-A0SK-DX1_xmin45749_ymin25055_MPP-0.2500'
    name = format_train_name(stem, 7, [0, 1, 1, 0])
    assert name == stem + '+7[0110].png'
    assert parse_train_label(name).tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize('stem,index,label', [('', 0, [1, 0, 0, 0]), ('a[1]', 0, [1, 0, 0, 0]),
                                              ('a', -1, [1, 0, 0, 0]), ('a', 0, [0, 0, 0, 0]),
                                              ('a', 0, [1, 0, 2, 0]), ('a', 0, [1, 0, 0])])
def test_format_rejects_bad_input(stem, index, label):
    with pytest.raises(ValueError):
        format_train_name(stem, index, label)

"""The pre-training data check (lpd_bench.apis.check_data) checks the layout the config's dataset
type expects: a LUAD-HistoSeg config on a BCSS-WSSS folder (or the reverse) is a clear error,
and data_root None is the default synthetic set of that layout."""
from pathlib import Path

import pytest

from helpers import REPO
from lpd_bench import apis
from lpd_bench.data import synthetic
from lpd_bench.data.layouts import BCSS, LUAD

LUAD_CONFIG = str(REPO / 'configs' / 'cam_luad_synth_cpu.py')
BCSS_CONFIG = str(REPO / 'configs' / 'cam_synth_cpu.py')
TRAINING = ('train_dataloader', 'val_dataloader')


@pytest.fixture(scope='module')
def luad_data(tmp_path_factory):
    return str(synthetic.write_synthetic_dataset(
        tmp_path_factory.mktemp('luad') / 'LUAD-HistoSeg', seed=3, n_train=8, n_val=4, n_test=4,
        patch_size=64, layout='luad'))


def failure(config, data_root, loaders=TRAINING) -> str:
    with pytest.raises(SystemExit) as err:
        apis.check_data(apis.load_config(config, {'data_root': data_root}), loaders)
    return str(err.value)


def test_dataset_types_name_their_layouts():
    assert apis.dataset_layout({'type': 'LUADHistoSegDataset'}) is LUAD
    assert apis.dataset_layout({'type': 'BCSSWSSSDataset'}) is BCSS
    assert apis.dataset_layout({'type': 'ConcatDataset'}) is None


def test_each_config_passes_on_its_own_layout(luad_data, tiny_data):
    apis.check_data(apis.load_config(LUAD_CONFIG, {'data_root': luad_data}), TRAINING)
    apis.check_data(apis.load_config(BCSS_CONFIG, {'data_root': tiny_data}), TRAINING)


def test_luad_config_on_a_bcss_folder_is_refused(tiny_data):
    message = failure(LUAD_CONFIG, tiny_data)
    assert f"dataset check failed for data_root='{tiny_data}'" in message
    assert 'layout LUAD-HistoSeg' in message
    assert 'holds BCSS-WSSS train names' in message
    assert 'expects LUAD-HistoSeg (<patient>-<x>-<y>-[a b c d].png)' in message


def test_bcss_config_on_a_luad_folder_is_refused(luad_data):
    message = failure(BCSS_CONFIG, luad_data)
    assert 'holds LUAD-HistoSeg train names' in message
    assert 'expects BCSS-WSSS (<slide-region>+<index>[abcd].png)' in message


def test_test_split_only_is_refused_by_the_train_names_too(tiny_data, luad_data):
    message = failure(LUAD_CONFIG, tiny_data, ('test_dataloader', ))
    assert '1 problem(s)' in message
    assert (f'{tiny_data}: holds BCSS-WSSS (from its train file names, e.g. '
            f'{tiny_data}/train/') in message
    assert "but the config's dataset expects LUAD-HistoSeg" in message
    apis.check_data(apis.load_config(LUAD_CONFIG, {'data_root': luad_data}),
                    ('test_dataloader', ))


def test_none_root_checks_the_default_set_of_the_configs_layout(monkeypatch, luad_data):
    asked = []

    def fake_root(*args, layout='bcss', **kwargs):
        asked.append(layout)
        return Path(luad_data)

    monkeypatch.setattr(synthetic, 'default_synthetic_root', fake_root)
    apis.check_data(apis.load_config(LUAD_CONFIG), TRAINING)
    assert asked == ['luad']
    with pytest.raises(SystemExit, match='holds LUAD-HistoSeg train names'):
        apis.check_data(apis.load_config(BCSS_CONFIG), TRAINING)
    assert asked == ['luad', 'bcss']

"""Run outputs that name or colour classes follow the dataset: snapshot label maps (palette),
the specialisation post-stage (class names, default data root), the PBIP stand-in bank (class
names); BCSS-WSSS's stay as they were."""
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from helpers import REPO
from lpd_bench import apis
from lpd_bench.analysis import specialisation
from lpd_bench.analysis.specialisation import SpecialisationCounter, submorphology_dir
from lpd_bench.data import synthetic
from lpd_bench.data.bcss_meta import PALETTE as BCSS_PALETTE
from lpd_bench.data.layouts import LUAD
from lpd_bench.runner.snapshots import save_label_png

from baselines.pbip.prototype_bank import config_class_names, write_random_bank


def flat(palette):
    return [v for rgb in palette for v in rgb]


def test_snapshot_label_maps_take_the_datasets_palette(tmp_path):
    labels = np.array([[0, 1], [3, 4]])
    save_label_png(tmp_path / 'luad.png', labels, LUAD.metainfo()['palette'])
    save_label_png(tmp_path / 'bcss.png', labels)
    luad, bcss = (Image.open(tmp_path / f'{k}.png') for k in ('luad', 'bcss'))
    assert luad.getpalette()[:15] == flat(LUAD.palette)
    assert bcss.getpalette()[:15] == flat(BCSS_PALETTE)
    assert np.array_equal(np.asarray(luad), labels) and np.array_equal(np.asarray(bcss), labels)
    # BCSS-WSSS's metainfo palette (lists) writes the same file as the default (tuples)
    from lpd_bench.data.layouts import BCSS
    save_label_png(tmp_path / 'meta.png', labels, BCSS.metainfo()['palette'])
    assert (tmp_path / 'meta.png').read_bytes() == (tmp_path / 'bcss.png').read_bytes()


def test_specialisation_names_classes_after_the_dataset():
    maps = np.zeros((8, 4, 4))
    maps[1] = 1.0  # class 0's second prototype wins everywhere
    mask = np.zeros((4, 4), np.int64)
    sub = np.zeros((4, 4), np.int64)
    luad = SpecialisationCounter(4, 2, grid=2, class_names=LUAD.tissue_classes)
    luad.add(maps, mask, sub)
    assert list(luad.result()['classes']) == ['TE']
    assert luad.result()['classes']['TE']['prototype_share'] == [0.0, 1.0]
    bcss = SpecialisationCounter(4, 2, grid=2)
    bcss.add(maps, mask, sub)
    assert list(bcss.result()['classes']) == ['TUM']


def test_specialisation_default_root_is_the_layouts(monkeypatch, tmp_path):
    roots = {'bcss': tmp_path / 'b', 'luad': tmp_path / 'l'}
    monkeypatch.setattr(synthetic, 'default_synthetic_root',
                        lambda *args, layout='bcss', **kwargs: roots[layout])
    assert submorphology_dir(None, 'test', 'luad') == roots['luad'] / 'submorphology' / 'test'
    assert submorphology_dir(None) == roots['bcss'] / 'submorphology' / 'test'
    (roots['luad'] / 'submorphology' / 'test').mkdir(parents=True)
    assert specialisation.has_submorphology(None, layout='luad')
    assert not specialisation.has_submorphology(None)


def test_stand_in_bank_names_the_configs_classes(tmp_path):
    luad = apis.load_config(str(REPO / 'configs' / 'pbip_luad_synth_cpu.py'))
    bcss = apis.load_config(str(REPO / 'configs' / 'pbip_synth_cpu.py'))
    assert config_class_names(luad) == ('TE', 'NEC', 'LYM', 'TAS')
    assert config_class_names(bcss) == ('TUM', 'STR', 'LYM', 'NEC')
    for name, cfg in (('luad', luad), ('bcss', bcss)):
        write_random_bank(cfg, str(tmp_path / f'{name}.pth'))
    banks = {n: torch.load(tmp_path / f'{n}.pth', weights_only=True) for n in ('luad', 'bcss')}
    assert banks['luad']['classes'] == ['TE', 'NEC', 'LYM', 'TAS']
    assert banks['bcss']['classes'] == ['TUM', 'STR', 'LYM', 'NEC']
    assert torch.equal(banks['luad']['prototypes'], banks['bcss']['prototypes'])
    assert Path(luad.model.decode_head.prototypes.bank_path).parent.name == (
        'pbip_luad_synth_cpu')

"""The CPU preset's pretrained backbone and refiner encoder on LUAD-HistoSeg-layout data: train
labels read in the folder's own layout, ``data_root`` None resolved to the default set of the
config's ``layout``, BCSS-WSSS cache keys unchanged."""
import inspect
from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

from helpers import CPU_PRESET_ENCODER, REPO
from lpd_bench import apis
from lpd_bench.data import synthetic
from lpd_bench.data.filenames import parse_train_label
from lpd_bench.data.luad_filenames import format_luad_train_name, parse_luad_train_label
from lpd_bench.models import backbone_pretraining as bp
from lpd_bench.models import encoder_pretraining as ep

LUAD_CPU_CONFIG = str(REPO / 'configs' / 'lpd_luad_synth_cpu.py')
#: Cache file names (without the data folder) of the CPU preset's backbone and refiner encoder
#: for helpers.make_tiny_dataset's BCSS-WSSS set at the default settings, recorded with the code
#: before the LUAD-HistoSeg layout existed.
BCSS_BACKBONE_SUFFIX = '-it9600-seed0-1c7a2a09da416c83.pth'
BCSS_ENCODER_SUFFIX = '-it600-seed0-b17951a4761fe3ed.pth'


def make_luad_toy(root: Path, labels) -> Path:
    """A train split of 16 px noise images named in the LUAD-HistoSeg way, one per label."""
    rng = np.random.default_rng(0)
    (root / 'train').mkdir(parents=True)
    for i, label in enumerate(labels):
        rgb = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        name = format_luad_train_name('1031280', 224 * i, 0, label)
        Image.fromarray(rgb).save(root / 'train' / name)
    return root


@pytest.fixture(scope='module')
def luad_data(tmp_path_factory):
    return str(synthetic.write_synthetic_dataset(
        tmp_path_factory.mktemp('luad') / 'LUAD-HistoSeg', seed=3, n_train=8, n_val=4, n_test=4,
        patch_size=64, layout='luad'))


@pytest.fixture
def default_roots(monkeypatch, tiny_data, luad_data):
    """``default_synthetic_root`` answers with the tiny set of the asked layout and records it."""
    asked = []

    def fake_root(*args, layout='bcss', **kwargs):
        asked.append(layout)
        return Path({'bcss': tiny_data, 'luad': luad_data}[layout])

    monkeypatch.setattr(synthetic, 'default_synthetic_root', fake_root)
    return asked


def test_train_labels_follow_the_folders_layout(luad_data, tiny_data):
    paths, labels = ep.train_images(luad_data)
    assert len(paths) == 8 and labels.shape == (8, 4)
    assert all('[' in p.name and ' ' in p.name for p in paths)
    assert labels.tolist() == [parse_luad_train_label(p).tolist() for p in paths]
    paths, labels = ep.train_images(tiny_data)
    assert labels.tolist() == [parse_train_label(p).tolist() for p in paths]


def test_missing_single_label_class_is_named_with_luad_names(tmp_path):
    root = make_luad_toy(tmp_path / 'toy', [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
                                            [1, 0, 0, 1]])
    with pytest.raises(ValueError) as err:
        ep.single_label_sources(root, 8)
    assert 'no single-label image of TAS' in str(err.value)
    assert "{'TE': 1, 'NEC': 1, 'LYM': 1, 'TAS': 0}" in str(err.value)


def test_encoder_pretrains_on_luad_names(tmp_path):
    labels = [np.eye(4, dtype=int)[c].tolist() for c in range(4) for _ in range(2)]
    root = make_luad_toy(tmp_path / 'toy', labels + [[1, 1, 0, 0]])
    init_default_scope('mmseg')
    info = {}
    state = ep.pretrain_frozen_encoder(CPU_PRESET_ENCODER, root, iters=2, batch_size=4,
                                       source_size=16, info=info)
    assert state and info['single_label_images'] == [2, 2, 2, 2]


def test_none_data_root_is_the_default_set_of_the_layout(default_roots, luad_data, tiny_data):
    assert ep.resolve_data_root(None, 'luad') == Path(luad_data)
    assert ep.resolve_data_root(None) == Path(tiny_data)
    assert default_roots == ['luad', 'bcss']
    luad_folder = Path(luad_data).name
    encoder = ep.SyntheticPretrainedPatchMLP(layout='luad')
    path = ep.pretrained_encoder_path(encoder.backbone_cfg(), None, 16, build=False,
                                      layout=encoder.layout)
    assert path.name.startswith(f'patchmlp-{luad_folder}-')
    init = bp.SyntheticPretrainedBackbone(layout='luad')
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    module = MODELS.build(dict(type='MixVisionTransformer', embed_dims=16, num_layers=[1, 1, 1, 1]))
    assert init.path(module, build=False).name.startswith(f'mixvisiontransformer-{luad_folder}-')
    assert bp.SyntheticPretrainedBackbone().path(module, build=False).name.startswith(
        f'mixvisiontransformer-{Path(tiny_data).name}-')


def test_bcss_cache_names_are_unchanged(tiny_data, monkeypatch):
    """The same file names as before the LUAD layout (the suite's cheap settings undone)."""
    monkeypatch.setattr(bp, 'pretrain_settings', inspect.unwrap(bp.pretrain_settings))
    cfg = apis.load_config(str(REPO / 'configs' / 'lpd_synth_cpu.py'))
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    module = MODELS.build(dict(cfg.model.backbone.to_dict(), init_cfg=None))
    backbone = bp.pretrained_backbone_path(module, tiny_data, build=False)
    encoder = ep.pretrained_encoder_path(cfg.model.decode_head.refiner_loss.encoder.to_dict(),
                                         tiny_data, 16, build=False)
    assert backbone.name == f'mixvisiontransformer-BCSS-WSSS{BCSS_BACKBONE_SUFFIX}'
    assert encoder.name == f'patchmlp-BCSS-WSSS{BCSS_ENCODER_SUFFIX}'


def test_luad_cpu_config_pretrains_on_the_luad_default_set():
    cfg = apis.load_config(LUAD_CPU_CONFIG)
    assert cfg.model.backbone.init_cfg.layout == 'luad'
    assert cfg.model.decode_head.refiner_loss.encoder.backbone.layout == 'luad'
    again = apis.load_config(LUAD_CPU_CONFIG, {'backbone_init': 'pretrained',
                                               'cpu_encoder': 'pretrained'})
    assert again.model.backbone.init_cfg.layout == 'luad'
    assert again.model.decode_head.refiner_loss.encoder.backbone.layout == 'luad'
    random = apis.load_config(LUAD_CPU_CONFIG, {'cpu_encoder': 'random'})
    assert random.model.decode_head.refiner_loss.encoder.backbone == dict(
        type='PatchMLPEncoder', in_channels=3, patch_size=4, embed_dims=(64, 128))
    moved = apis.load_config(LUAD_CPU_CONFIG, {'data_root': '/d'})
    assert moved.model.backbone.init_cfg.data_root == '/d'
    assert moved.model.decode_head.refiner_loss.encoder.backbone.data_root == '/d'

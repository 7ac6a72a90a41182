"""The CPU preset's pretrained MiT backbone (lpd_bench.models.backbone_pretraining).

Tiny settings throughout (a few iterations of small batches on the 8-image tiny set); this module
undoes the suite's cheap defaults (conftest.cheap_backbone_init) and caches under its own
``LPD_BENCH_CACHE``.
"""
import inspect
import shutil

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from helpers import CONFIG, REPO, tiny_mit
from lpd_bench.apis import load_config
from lpd_bench.data.synthetic import write_synthetic_dataset
from lpd_bench.models import backbone_pretraining as bp
from lpd_bench.models.encoder_pretraining import deterministic_cpu, read_pretrained

FAST = dict(iters=3, batch_size=4)
SIZE = (32, 32)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """The real settings and cache dir (not the suite's cheap ones), the cache in ``tmp_path``."""
    init_default_scope('mmseg')
    for name in ('pretrain_settings', 'backbone_cache_dir'):
        monkeypatch.setattr(bp, name, inspect.unwrap(getattr(bp, name)))
    monkeypatch.setenv('LPD_BENCH_CACHE', str(tmp_path / 'cache'))
    return tmp_path / 'cache'


@pytest.fixture(scope='module')
def other_data(tmp_path_factory):
    """Another tiny set (other seed: other images and manifest)."""
    return str(write_synthetic_dataset(tmp_path_factory.mktemp('other') / 'BCSS-WSSS', seed=4,
                                       n_train=4, n_val=2, n_test=2, patch_size=64))


def mit():
    torch.manual_seed(0)
    return MODELS.build(tiny_mit())


def test_same_inputs_give_identical_weights_unlike_the_random_init(tiny_data):
    module = mit()
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    info = {}
    first = bp.pretrain_backbone(module, tiny_data, SIZE, info=info, **FAST)
    after = torch.rand(1)
    second = bp.pretrain_backbone(module, tiny_data, SIZE, **FAST)
    assert torch.equal(before, after)  # the caller's random stream is untouched
    assert torch.get_num_threads() == threads  # same thread count for both (and restored)
    assert not torch.are_deterministic_algorithms_enabled()
    assert first.keys() == second.keys() == module.state_dict().keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert info['threads'] == threads and info['train_images'] == 8
    assert info['final_train_loss'] > 0
    # the random start the pretraining draws (seeded), then trained: every parameter moved
    with deterministic_cpu(0):
        start = bp.fresh_copy(module).state_dict()
    for name, _ in module.named_parameters():
        assert not torch.equal(first[name], start[name]), name
    # the module itself is not touched (a fresh copy is trained)
    untouched = mit().state_dict()
    assert all(torch.equal(v, untouched[k]) for k, v in module.state_dict().items())
    other_seed = bp.pretrain_backbone(module, tiny_data, SIZE, **dict(FAST, seed=1))
    assert not torch.equal(first['layers.0.0.projection.weight'],
                           other_seed['layers.0.0.projection.weight'])


def test_other_seed_data_size_or_backbone_is_another_cache_file(tiny_data, other_data, cache):
    module = mit()
    path = bp.pretrained_backbone_path(module, tiny_data, SIZE, build=False, **FAST)
    assert path.parent == cache / bp.CACHE_SUBDIR
    assert path.name.startswith('mixvisiontransformer-BCSS-WSSS-it3-seed0-')
    assert not path.exists()  # build=False only names it
    others = [bp.pretrained_backbone_path(module, tiny_data, SIZE, build=False,
                                          **dict(FAST, seed=1)),
              bp.pretrained_backbone_path(module, other_data, SIZE, build=False, **FAST),
              bp.pretrained_backbone_path(module, tiny_data, (64, 64), build=False, **FAST),
              bp.pretrained_backbone_path(module, tiny_data, SIZE, build=False,
                                          **dict(FAST, lr=1e-4)),
              bp.pretrained_backbone_path(MODELS.build(dict(tiny_mit(), mlp_ratio=4)), tiny_data,
                                          SIZE, build=False, **FAST)]
    assert len({path, *others}) == 6
    # the init_cfg mmengine prints with the module is not part of the key
    configured = MODELS.build(tiny_mit(init_cfg=dict(type='SyntheticPretrainedBackbone',
                                                     data_root=tiny_data, pretrain=FAST)))
    assert bp.pretrained_backbone_path(configured, tiny_data, SIZE, build=False, **FAST) == path
    assert configured.init_cfg['type'] == 'SyntheticPretrainedBackbone'  # restored
    with pytest.raises(TypeError, match=r"unknown settings \['iterations'\]"):
        bp.pretrained_backbone_path(module, tiny_data, SIZE, build=False, iterations=3)
    with pytest.raises(TypeError, match='unknown settings'):
        bp.SyntheticPretrainedBackbone(tiny_data, pretrain=dict(iterations=3))


def test_cache_is_built_once_and_reused(tiny_data, cache, monkeypatch):
    module = mit()
    lines = []
    path = bp.pretrained_backbone_path(module, tiny_data, SIZE, progress=lines.append, **FAST)
    assert path.is_file() and path.parent == cache / bp.CACHE_SUBDIR
    assert 'backbone pretraining: 8 train images of' in lines[0]
    assert lines[-1] == f'backbone pretraining: wrote {path}'
    saved = read_pretrained(path)
    assert saved['state_dict'].keys() == module.state_dict().keys()
    meta = saved['meta']
    assert meta['key']['data'].startswith('manifest:') and meta['key']['settings']['iters'] == 3
    assert meta['threads'] == torch.get_num_threads() and meta['train_images'] == 8
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + '.lock']

    def no_training(*args, **kwargs):
        raise AssertionError('pretrained again although cached')

    monkeypatch.setattr(bp, 'pretrain_backbone', no_training)
    assert bp.pretrained_backbone_path(module, tiny_data, SIZE, progress=lines.append,
                                       **FAST) == path
    init = bp.SyntheticPretrainedBackbone(tiny_data, SIZE, pretrain=FAST)
    target = mit()
    init(target)  # loads the cached file, no training
    assert all(torch.equal(target.state_dict()[k], v) for k, v in saved['state_dict'].items())


def test_config_initialiser_loads_the_cached_weights(tiny_data, cache):
    cfg = load_config(CONFIG, {'data_root': tiny_data, 'model.backbone.init_cfg.pretrain': FAST,
                               'cpu_encoder': 'random'}, init_scope=True)
    init = bp.synthetic_init_cfg(cfg)
    assert cfg.backbone_init == 'pretrained'
    assert init['data_root'] == tiny_data and tuple(init['input_size']) == (112, 112)
    model = MODELS.build(cfg.model)
    model.init_weights()  # what MMEngine's runner does after building the model
    path = bp.pretrained_backbone_path(model.backbone, tiny_data, (112, 112), build=False, **FAST)
    assert path.is_file()
    state = read_pretrained(path)['state_dict']
    assert state.keys() == model.backbone.state_dict().keys()
    assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in state.items())
    # the same file for every method of the preset (same backbone, data and settings)
    cam = load_config(str(REPO / 'configs' / 'cam_synth_cpu.py'),
                      {'data_root': tiny_data, 'model.backbone.init_cfg.pretrain': FAST})
    backbone = MODELS.build(dict(cam.model.backbone, init_cfg=None))
    assert bp.SyntheticPretrainedBackbone(**{k: v for k, v in bp.synthetic_init_cfg(cam).items()
                                             if k != 'type'}).path(backbone, build=False) == path


def test_backbone_init_alias_and_data_root_in_either_order(tiny_data):
    scratch = load_config(CONFIG, {'data_root': tiny_data, 'backbone_init': 'scratch'})
    assert scratch.backbone_init == 'scratch' and scratch.model.backbone.init_cfg is None
    assert bp.synthetic_init_cfg(scratch) is None
    for options in ({'data_root': tiny_data, 'backbone_init': 'pretrained'},
                    {'backbone_init': 'pretrained', 'data_root': tiny_data},
                    {'backbone_init': 'scratch', 'data_root': tiny_data,
                     'model.backbone.init_cfg': None}):
        cfg = load_config(CONFIG, options)
        if options['backbone_init'] == 'scratch':
            assert cfg.model.backbone.init_cfg is None  # data_root adds no init_cfg
            continue
        assert dict(bp.synthetic_init_cfg(cfg)) == dict(
            type='SyntheticPretrainedBackbone', data_root=tiny_data, input_size=(112, 112))
    # settings given as plain options survive the alias (merged before it)
    kept = load_config(CONFIG, {'model.backbone.init_cfg.pretrain.iters': 2,
                                'backbone_init': 'pretrained', 'data_root': tiny_data})
    assert kept.model.backbone.init_cfg.pretrain == dict(iters=2)
    assert load_config(CONFIG).model.backbone.init_cfg.data_root is None  # default set
    with pytest.raises(ValueError, match="backbone_init must be one of .*got 'imagenet'"):
        load_config(CONFIG, {'backbone_init': 'imagenet'})


def test_unknown_setting_in_a_config_fails_when_the_model_is_initialised(tiny_data):
    cfg = load_config(CONFIG, {'data_root': tiny_data, 'cpu_encoder': 'random',
                               'model.backbone.init_cfg.pretrain': dict(iterations=3)},
                      init_scope=True)
    model = MODELS.build(cfg.model)
    with pytest.raises(TypeError, match=r"unknown settings \['iterations'\]"):
        model.init_weights()


def test_train_split_without_images_is_a_clear_error(tiny_data, tmp_path):
    root = tmp_path / 'no_train'
    shutil.copytree(tiny_data, root)
    for path in (root / 'train').glob('*.png'):
        path.unlink()
    with pytest.raises(FileNotFoundError,
                       match=f'backbone pretraining: no \\*.png image in the train split folder '
                       f'{root / "train"}'):
        bp.pretrained_backbone_path(mit(), root, SIZE, **FAST)
    assert not list((bp.backbone_cache_dir()).glob('*.pth'))

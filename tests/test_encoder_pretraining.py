"""The CPU preset's pretrained frozen encoder (lpd_bench.models.encoder_pretraining)."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from PIL import Image

from helpers import CPU_PRESET_ENCODER, REPO
from lpd_bench.data.filenames import format_train_name
from lpd_bench.models import encoder_pretraining as ep

#: Distinct BGR-ish colours of the four tissue classes in the toy set (RGB written).
COLOURS = ((220, 60, 60), (60, 200, 60), (60, 60, 220), (200, 200, 60))
SIZE = 32
FAST = dict(iters=4, batch_size=8, source_size=SIZE)


def _image(rng, classes, size=SIZE):
    """An RGB patch: left/right halves of the given classes' colours, plus noise; its mask."""
    mask = np.zeros((size, size), np.uint8)
    mask[:, size // 2:] = classes[-1]
    mask[:, :size // 2] = classes[0]
    rgb = np.array(COLOURS, np.float64)[mask] + rng.normal(0, 12, (size, size, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8), mask


def make_toy_set(root: Path, per_class=4, missing=None) -> Path:
    """Train: ``per_class`` single-label images per class (none of class ``missing``) and a few
    two-class ones; val: two-class images with masks."""
    rng = np.random.default_rng(0)
    (root / 'train').mkdir(parents=True)
    (root / 'val' / 'img').mkdir(parents=True)
    (root / 'val' / 'mask').mkdir()
    index = 0
    for c in range(4):
        for _ in range(per_class if c != missing else 0):
            rgb, _ = _image(rng, [c])
            label = np.eye(4, dtype=int)[c]
            Image.fromarray(rgb).save(root / 'train' / format_train_name('toy', index, label))
            index += 1
    for a, b in ((0, 1), (2, 3)):
        rgb, _ = _image(rng, [a, b])
        label = np.eye(4, dtype=int)[a] + np.eye(4, dtype=int)[b]
        Image.fromarray(rgb).save(root / 'train' / format_train_name('toy', index, label))
        index += 1
    for i, (a, b) in enumerate(((0, 1), (2, 3), (1, 2), (3, 0))):
        rgb, mask = _image(rng, [a, b])
        Image.fromarray(rgb).save(root / 'val' / 'img' / f'toy+{i}.png')
        Image.fromarray(mask).save(root / 'val' / 'mask' / f'toy+{i}.png')
    return root


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_toy_set(tmp_path_factory.mktemp('enc') / 'toy')


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('LPD_BENCH_CACHE', str(tmp_path / 'cache'))
    return tmp_path / 'cache'


@pytest.fixture(autouse=True)
def scope():
    init_default_scope('mmseg')


def test_two_pretraining_runs_give_identical_weights_and_restore_the_torch_state(toy):
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = ep.pretrain_frozen_encoder(CPU_PRESET_ENCODER, toy, seed=3, mask_prob=0.5, **FAST)
    after = torch.rand(1)
    second = ep.pretrain_frozen_encoder(CPU_PRESET_ENCODER, toy, seed=3, mask_prob=0.5, **FAST)
    assert torch.equal(before, after)  # the caller's RNG stream is untouched
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()
    assert first.keys() == second.keys() == MODELS.build(
        ep.backbone_config(CPU_PRESET_ENCODER)).state_dict().keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = ep.pretrain_frozen_encoder(CPU_PRESET_ENCODER, toy, seed=4, **FAST)
    assert not torch.equal(first['layers.0.weight'], other['layers.0.weight'])
    # the optional multi-label term (whole two-class images, BCE) runs and changes the weights
    multi = ep.pretrain_frozen_encoder(CPU_PRESET_ENCODER, toy, seed=3, mask_prob=0.5,
                                       multi_label_weight=0.5, **FAST)
    assert not torch.equal(first['layers.0.weight'], multi['layers.0.weight'])


def test_cache_is_built_once_and_reused(toy, cache, monkeypatch):
    path = ep.pretrained_encoder_path(CPU_PRESET_ENCODER, toy, 16, **FAST)
    assert path.is_file() and path.parent == cache / ep.CACHE_SUBDIR
    assert path.name.startswith('patchmlp-toy-it4-seed0-')
    saved = ep.read_pretrained(path)
    assert saved['meta']['key']['data'].startswith('train-files:')  # no manifest.json here
    assert set(saved['meta']['evaluation']) == {'val_crop', 'val_crop_masked'}

    def no_training(*args, **kwargs):
        raise AssertionError('pretrained again although cached')

    monkeypatch.setattr(ep, 'pretrain_frozen_encoder', no_training)
    assert ep.pretrained_encoder_path(CPU_PRESET_ENCODER, toy, 16, **FAST) == path
    # other settings, encoder or data are other files (not built with build=False)
    assert ep.pretrained_encoder_path(CPU_PRESET_ENCODER, toy, 16, build=False,
                                      **dict(FAST, seed=1)) != path
    wider = dict(CPU_PRESET_ENCODER, backbone=dict(CPU_PRESET_ENCODER['backbone'],
                                                   embed_dims=(32, 128)))
    assert ep.pretrained_encoder_path(wider, toy, 16, build=False, **FAST) != path
    with pytest.raises(TypeError, match='unknown settings'):
        ep.pretrained_encoder_path(CPU_PRESET_ENCODER, toy, 16, build=False, iterations=3)


def test_cached_weights_load_into_the_cpu_presets_frozen_encoder(toy, cache):
    path = ep.pretrained_encoder_path(CPU_PRESET_ENCODER, toy, 16, **FAST)
    state = ep.read_pretrained(path)['state_dict']
    encoder = MODELS.build(dict(CPU_PRESET_ENCODER, checkpoint=str(path)))
    assert all(torch.equal(encoder.backbone.state_dict()[k], v) for k, v in state.items())
    # the registered backbone loads the same file in init_weights (as FrozenImageEncoder calls it)
    backbone = dict(CPU_PRESET_ENCODER['backbone'], type='SyntheticPretrainedPatchMLP',
                    data_root=str(toy), cutout_size=16, pretrain=FAST)
    wrapped = MODELS.build(dict(CPU_PRESET_ENCODER, backbone=backbone))
    assert wrapped.backbone.pretrained_path == str(path)
    assert all(torch.equal(wrapped.backbone.state_dict()[k], v) for k, v in state.items())
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(wrapped(x), encoder(x))
    assert wrapped(x).shape == (2, CPU_PRESET_ENCODER['out_dim'])


def test_accuracy_above_chance_on_distinct_class_colours(toy, cache):
    info = {}
    state = ep.pretrain_frozen_encoder(CPU_PRESET_ENCODER, toy, iters=40, batch_size=32,
                                       source_size=SIZE, info=info)
    backbone = MODELS.build(ep.backbone_config(CPU_PRESET_ENCODER))
    backbone.load_state_dict(state)
    result = ep.evaluate_encoder(backbone, info['head'], toy, 16, SIZE)
    assert result['val_crop']['crops'] > 0
    assert result['val_crop']['accuracy'] > 0.6  # chance: 0.25
    assert info['train_crop_accuracy'] > 0.6


def test_missing_single_label_class_is_a_clear_error(tmp_path):
    root = make_toy_set(tmp_path / 'no_nec', missing=3)
    with pytest.raises(ValueError, match=r'no single-label image of NEC .*NEC.: 0'):
        ep.pretrain_frozen_encoder(CPU_PRESET_ENCODER, root, **FAST)


def test_config_variable_and_alias_switch_the_encoder(tmp_path, toy):
    from lpd_bench.apis import load_config
    cfg = load_config(str(REPO / 'configs' / 'lpd_synth_cpu.py'),
                      {'data_root': str(toy), 'cpu_encoder': 'pretrained'})
    backbone = cfg.model.decode_head.refiner_loss.encoder.backbone
    assert cfg.cpu_encoder == 'pretrained'
    assert backbone.type == 'SyntheticPretrainedPatchMLP'
    assert backbone.data_root == str(toy) and backbone.cutout_size == 16
    preset = load_config(str(REPO / 'configs' / 'lpd_synth_cpu.py'))
    assert preset.cpu_encoder == 'pretrained'  # the preset's default
    assert preset.model.decode_head.refiner_loss.encoder.backbone.type == \
        'SyntheticPretrainedPatchMLP'
    random = load_config(str(REPO / 'configs' / 'lpd_synth_cpu.py'), {'cpu_encoder': 'random'})
    assert random.cpu_encoder == 'random'
    assert random.model.decode_head.refiner_loss.encoder.backbone.to_dict() == dict(
        type='PatchMLPEncoder', in_channels=3, patch_size=4, embed_dims=(64, 128))
    ep.set_cpu_encoder(cfg, 'random')
    assert cfg.model.decode_head.refiner_loss.encoder.backbone.to_dict() == dict(
        type='PatchMLPEncoder', in_channels=3, patch_size=4, embed_dims=(64, 128))
    cam = load_config(str(REPO / 'configs' / 'cam_synth_cpu.py'), {'cpu_encoder': 'pretrained'})
    assert cam.cpu_encoder == 'pretrained'  # no refiner: recorded only
    with pytest.raises(ValueError, match='cpu_encoder must be one of'):
        ep.set_cpu_encoder(cfg, 'imagenet')
    # the variable in the model config itself (what the LEAD flips to switch the preset)
    models = tmp_path / 'models'
    shutil.copytree(REPO / 'configs' / '_base_' / 'models', models)
    text = (models / 'lpd_mit_tiny_cpu.py').read_text()
    assert "\ncpu_encoder = 'pretrained'\n" in text
    assert Config.fromfile(str(models / 'lpd_mit_tiny_cpu.py')).model.decode_head.refiner_loss \
        .encoder.backbone.to_dict() == dict(
            type='SyntheticPretrainedPatchMLP', in_channels=3, patch_size=4,
            embed_dims=(64, 128), data_root=None, cutout_size=16)
    (models / 'lpd_mit_tiny_cpu.py').write_text(
        text.replace("\ncpu_encoder = 'pretrained'\n", "\ncpu_encoder = 'random'\n"))
    switched = Config.fromfile(str(models / 'lpd_mit_tiny_cpu.py'))
    assert switched.model.decode_head.refiner_loss.encoder.backbone.to_dict() == dict(
        type='PatchMLPEncoder', in_channels=3, patch_size=4, embed_dims=(64, 128))

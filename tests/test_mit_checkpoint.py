"""Official SegFormer MiT checkpoints load into mmseg's MixVisionTransformer (PretrainedMiT)."""
import re

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import lpd_bench.models  # noqa: F401  (registers PretrainedMiT)
from lpd_bench.models.mit_checkpoint import is_official_mit, load_mit_checkpoint

BLOCK_RENAMES = (('attn.attn.out_proj.', 'attn.proj.'), ('ffn.layers.0.', 'mlp.fc1.'),
                 ('ffn.layers.1.', 'mlp.dwconv.dwconv.'), ('ffn.layers.4.', 'mlp.fc2.'))


def to_official(state_dict: dict) -> dict:
    """Inverse of mmseg's mit2mmseg conversion: mmseg keys -> NVlabs SegFormer keys."""
    official = {'head.weight': torch.randn(10, 8), 'head.bias': torch.randn(10)}
    for key, value in state_dict.items():
        if match := re.fullmatch(r'layers\.(\d+)\.0\.projection\.(.+)', key):
            official[f'patch_embed{int(match[1]) + 1}.proj.{match[2]}'] = value
        elif match := re.fullmatch(r'layers\.(\d+)\.0\.norm\.(.+)', key):
            official[f'patch_embed{int(match[1]) + 1}.norm.{match[2]}'] = value
        elif match := re.fullmatch(r'layers\.(\d+)\.2\.(.+)', key):
            official[f'norm{int(match[1]) + 1}.{match[2]}'] = value
        elif match := re.fullmatch(r'layers\.(\d+)\.1\.(\d+)\.(.+)', key):
            prefix, sub = f'block{int(match[1]) + 1}.{match[2]}.', match[3]
            if sub.startswith('attn.attn.in_proj_'):
                suffix = sub.rsplit('_', 1)[1]  # weight / bias
                width = value.shape[0] // 3
                official[f'{prefix}attn.q.{suffix}'] = value[:width]
                official[f'{prefix}attn.kv.{suffix}'] = value[width:]
                continue
            for mmseg_name, official_name in BLOCK_RENAMES:
                sub = sub.replace(mmseg_name, official_name)
            if sub.startswith(('mlp.fc1.weight', 'mlp.fc2.weight')):
                value = value.flatten(1)
            official[prefix + sub] = value
        else:
            raise AssertionError(f'unmapped MiT key {key}')
    return official


def mit(num_layers=(2, 1, 1, 1), embed_dims=8, **kwargs):
    return MODELS.build(
        dict(type='MixVisionTransformer', embed_dims=embed_dims, num_layers=list(num_layers),
             num_heads=[1, 2, 2, 4], sr_ratios=[8, 4, 2, 1], strides=[4, 2, 2, 1], **kwargs))


@pytest.fixture(scope='module')
def source():
    torch.manual_seed(0)
    model = mit()
    model.init_weights()
    return model


@pytest.fixture
def official_file(source, tmp_path):
    path = tmp_path / 'mit_tiny.pth'
    torch.save(to_official(source.state_dict()), path)
    return path


def assert_same_weights(model, reference):
    theirs = reference.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, theirs[key]), key


def test_official_checkpoint_loads_through_init_cfg(source, official_file):
    official = torch.load(official_file, weights_only=True)
    assert is_official_mit(official) and 'block1.1.attn.kv.weight' in official
    init_default_scope('mmseg')
    model = mit(init_cfg=dict(type='PretrainedMiT', checkpoint=str(official_file)))
    model.init_weights()
    assert_same_weights(model, source)
    with torch.no_grad():
        x = torch.randn(1, 3, 32, 32)
        for ours, theirs in zip(model(x), source(x)):
            torch.testing.assert_close(ours, theirs)


def test_converted_mmseg_checkpoint_loads_too(source, tmp_path):
    path = tmp_path / 'mit_mmseg.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    model = mit()
    load_mit_checkpoint(model, path)
    assert_same_weights(model, source)


def test_checkpoint_of_another_depth_lists_missing_and_unexpected_keys(source, official_file):
    deeper = mit(num_layers=(2, 2, 1, 1))
    with pytest.raises(ValueError, match=r'missing keys \[layers\.1\.1\.1\.'):
        load_mit_checkpoint(deeper, official_file)
    shallower = mit(num_layers=(1, 1, 1, 1))
    with pytest.raises(ValueError, match=r'missing keys \[\]; unexpected keys \[layers\.0\.1\.1'):
        load_mit_checkpoint(shallower, official_file)


def test_checkpoint_of_another_width_is_a_shape_error(official_file):
    with pytest.raises(ValueError, match='mit_tiny.pth does not fit .*shape mismatch'):
        load_mit_checkpoint(mit(embed_dims=16), official_file)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        load_mit_checkpoint(mit(), tmp_path / 'nothing.pth')

"""FrozenImageEncoder: shape, frozen, input gradients, projection, weights_only/safetensors files."""
import copy
import pickle

import pytest
import torch
from mmengine.model import BaseModule
from safetensors.torch import save_file

from helpers import CPU_PRESET_ENCODER, SWIN_T_ENCODER
from lpd_bench.models.frozen_encoder import FrozenImageEncoder
from mmseg.registry import MODELS


def build(**overrides):
    cfg = copy.deepcopy(CPU_PRESET_ENCODER)
    cfg.update(overrides)
    return MODELS.build(cfg)


class NotAWeight:
    """An arbitrary pickled object: torch.load(weights_only=True) must refuse it."""


def test_output_shape_and_no_projection():
    x = torch.randn(3, 3, 32, 32)
    assert build()(x).shape == (3, 512)
    plain = build(out_dim=None)
    assert plain.projection is None and plain(x).shape == (3, 128)


def test_frozen_and_always_eval():
    enc = build()
    enc.train()
    assert not enc.training and not any(m.training for m in enc.modules())
    assert not any(p.requires_grad for p in enc.parameters())
    assert 'projection' in dict(enc.named_buffers())
    assert 'projection' not in dict(enc.named_parameters())


def test_input_gradient_flows_weights_get_none():
    enc = build()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    enc(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())


def test_projection_fixed_by_seed():
    torch.manual_seed(1)
    a = build(projection_seed=3)
    torch.manual_seed(2)
    b = build(projection_seed=3)
    assert torch.equal(a.projection, b.projection)
    assert not torch.equal(a.projection, build(projection_seed=4).projection)
    assert a.projection.std().item() == pytest.approx(128**-0.5, rel=0.1)


def test_checkpoint_loaded_with_weights_only(tmp_path):
    torch.manual_seed(0)
    source = build()
    path = tmp_path / 'encoder.pth'
    state = {f'backbone.{k}': v for k, v in source.backbone.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(2, 2)  # non-backbone keys are dropped
    torch.save({'state_dict': state, 'meta': {'epoch': 1}}, path)

    torch.manual_seed(1)
    fresh = build()
    loaded = build(checkpoint=str(path))
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(fresh(x), source(x))
    torch.testing.assert_close(loaded(x), source(x))

    unsafe = tmp_path / 'unsafe.pth'
    torch.save({'state_dict': source.backbone.state_dict(), 'meta': NotAWeight()}, unsafe)
    with pytest.raises(pickle.UnpicklingError, match='[Ww]eights only'):
        build(checkpoint=str(unsafe))


def test_checkpoint_read_as_safetensors_by_content(tmp_path):
    """A safetensors file (whatever its name) is read with safetensors, mmseg keys as they are."""
    torch.manual_seed(0)
    source = build()
    path = tmp_path / 'encoder.pth'  # the content decides, not the suffix
    save_file(source.backbone.state_dict(), str(path))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(build(checkpoint=str(path))(x), source(x))


def test_bad_checkpoint_and_feature_dim_errors(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save({'conv.weight': torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=r"other\.pth.*does not match backbone PatchMLPEncoder"):
        build(checkpoint=str(path))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        build(checkpoint=str(tmp_path / 'missing.pth'))
    text = tmp_path / 'weights.txt'
    text.write_text('not weights')
    with pytest.raises(ValueError, match=r"weights\.txt.*neither a PyTorch file"):
        build(checkpoint=str(text))
    wide = tmp_path / 'wide.pth'
    state = build().backbone.state_dict()
    key = next(k for k, v in state.items() if v.dim() == 2)
    state[key] = torch.zeros(state[key].shape[0], state[key].shape[1] + 1)
    torch.save(state, wide)
    with pytest.raises(ValueError, match=rf"wide\.pth.*shapes.*{key}"):
        build(checkpoint=str(wide))
    with pytest.raises(ValueError, match='has 128 channels, feature_dim says 64'):
        build(feature_dim=64)(torch.randn(1, 3, 32, 32))


def test_model_wide_init_weights_keeps_encoder_weights():

    class Parent(BaseModule):

        def __init__(self):
            super().__init__()
            self.encoder = build()

    parent = Parent()
    before = {k: v.clone() for k, v in parent.encoder.state_dict().items()}
    parent.init_weights()  # what a runner does; would re-draw the weights without the guard
    parent.encoder.init_weights()
    assert all(torch.equal(before[k], v) for k, v in parent.encoder.state_dict().items())


def test_swin_t_paper_encoder_builds():
    enc = MODELS.build(SWIN_T_ENCODER)
    assert sum(p.numel() for p in enc.parameters()) > 27e6  # Swin-T: 27.5 M backbone parameters
    assert enc(torch.randn(1, 3, 64, 64)).shape == (1, 512)

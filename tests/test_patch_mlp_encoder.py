"""PatchMLPEncoder: the per-patch MLP backbone of the CPU preset's frozen encoder."""
import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

import lpd_bench.models  # noqa: F401  (registers the modules)
from lpd_bench.models.patch_mlp_encoder import PatchMLPEncoder, space_to_channels


def built(**kwargs) -> PatchMLPEncoder:
    torch.manual_seed(0)
    enc = MODELS.build(dict(type='PatchMLPEncoder', **kwargs))
    enc.init_weights()
    return enc


def test_space_to_channels_is_pixel_unshuffle_in_channels_last():
    x = torch.randn(2, 5, 8, 12)
    expected = F.pixel_unshuffle(x, 4).permute(0, 2, 3, 1)
    assert torch.equal(space_to_channels(x.permute(0, 2, 3, 1), 4), expected)


def test_stage_shapes():
    outs = built(patch_size=8, embed_dims=(64, 128))(torch.randn(3, 3, 32, 48))
    assert [tuple(o.shape) for o in outs] == [(3, 64, 4, 6), (3, 128, 2, 3)]


def test_equals_a_reference_built_from_pixel_unshuffle_and_linear_maps():
    enc = built(patch_size=4, embed_dims=(6, 10))
    x = torch.randn(2, 3, 16, 16)
    first, second = enc.layers
    h = F.gelu(torch.einsum('nchw,dc->ndhw', F.pixel_unshuffle(x, 4), first.weight)
               + first.bias[:, None, None])
    h2 = F.gelu(torch.einsum('nchw,dc->ndhw', F.pixel_unshuffle(h, 2), second.weight)
                + second.bias[:, None, None])
    outs = enc(x)
    torch.testing.assert_close(outs[0], h)
    torch.testing.assert_close(outs[1], h2)


def test_patches_are_local_and_input_gradient_flows():
    enc = built(patch_size=8, embed_dims=(16, ))
    enc.requires_grad_(False)
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    out = enc(x)[0]  # (1, 16, 2, 2)
    out[0, :, 0, 0].sum().backward()
    assert x.grad[..., :8, :8].abs().sum() > 0
    assert x.grad[..., 8:, :].abs().sum() == 0 and x.grad[..., :, 8:].abs().sum() == 0
    assert all(p.grad is None for p in enc.parameters())


def test_blank_input_gives_non_zero_features():
    out = built(patch_size=8, embed_dims=(64, 128))(torch.zeros(1, 3, 16, 16))[-1]
    assert out.abs().sum() > 0


def test_weights_are_seeded_by_torch_seed():
    a, b = built(), built()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_bad_input_errors():
    enc = built(patch_size=8, embed_dims=(8, 8))
    with pytest.raises(ValueError, match=r'divisible by patch_size \* 2\^\(stages - 1\) = 16'):
        enc(torch.randn(1, 3, 24, 32))
    with pytest.raises(ValueError, match=r'expected \(N, 3, H, W\)'):
        enc(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match='embed_dims non-empty'):
        PatchMLPEncoder(embed_dims=())

"""Inference functions on hand-made maps: min-max, gating, background, fusion, TTA, CRF, protocol.

The public-code fidelity cases are in test_fidelity_inference.py."""
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lpd_bench.models.inference import (InferenceProtocol, add_background, dense_crf,
                                        fuse_stage_maps, gate_class_maps, merge_views,
                                        normalize_class_maps, tta_views)


def test_normalize_applies_relu_then_per_class_min_max():
    maps = torch.tensor([[[[-1.0, 0.0], [1.0, 3.0]], [[2.0, 4.0], [6.0, 10.0]]]])
    out = normalize_class_maps(maps, eps=0.0)
    torch.testing.assert_close(out, torch.tensor([[[[0.0, 0.0], [1 / 3, 1.0]],
                                                   [[0.0, 0.25], [0.5, 1.0]]]]))
    flat = normalize_class_maps(torch.full((1, 1, 3, 3), -2.0))
    assert torch.equal(flat, torch.zeros(1, 1, 3, 3))


def test_gating_zeroes_absent_classes_only():
    cams = torch.rand(2, 4, 3, 3)
    labels = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1]])
    gated = gate_class_maps(cams, labels)
    assert torch.equal(gated[0, [1, 3]], torch.zeros(2, 3, 3))
    assert torch.equal(gated[0, [0, 2]], cams[0, [0, 2]])
    assert torch.equal(gated[1, :3], torch.zeros(3, 3, 3)) and torch.equal(gated[1, 3], cams[1, 3])


def test_background_is_one_minus_max_to_the_alpha_as_last_channel():
    cams = torch.tensor([[[[0.5, 0.0]], [[0.2, 0.9]]]])  # (1, 2, 1, 2)
    out = add_background(cams, bg_alpha=2)
    assert out.shape == (1, 3, 1, 2)
    torch.testing.assert_close(out[0, 2], torch.tensor([[0.25, 0.01]]))
    torch.testing.assert_close(out[:, :2], cams)
    assert add_background(torch.zeros(1, 4, 2, 2), 10)[0, 4].eq(1).all()


def test_fusion_weights_upsample_and_skip_zero_weight_stages():
    torch.manual_seed(0)
    stage2, stage3 = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)
    for align_corners in (True, False):  # default (public code) and the old option
        fused = fuse_stage_maps([None, stage2, stage3, stage3], (0.0, 0.3, 0.3, 0.4), (16, 16),
                                align_corners)
        up = lambda m: F.interpolate(normalize_class_maps(m), size=(16, 16),  # noqa: E731
                                     mode='bilinear', align_corners=align_corners)
        torch.testing.assert_close(fused, 0.3 * up(stage2) + 0.7 * up(stage3))
        assert fused.shape == (1, 4, 16, 16)
    torch.testing.assert_close(
        fuse_stage_maps([None, stage2, stage3, stage3], (0.0, 0.3, 0.3, 0.4), (16, 16)),
        fuse_stage_maps([None, stage2, stage3, stage3], (0.0, 0.3, 0.3, 0.4), (16, 16), True))
    with pytest.raises(ValueError, match='stage 1 has fusion weight 0.5 but no class maps'):
        fuse_stage_maps([None, stage2], (0.5, 0.5), (16, 16))
    with pytest.raises(ValueError, match='2 fusion weights for 3 stages'):
        fuse_stage_maps([stage2] * 3, (0.5, 0.5), (16, 16))


def test_tta_views_scale_the_normalised_tensor_and_merge_flips_back():
    x = torch.randn(2, 3, 4, 5)
    views, flipped = tta_views(x, True, (0.9, 1.0, 1.1))
    assert views.shape == (12, 3, 4, 5) and flipped == [False] * 3 + [True] * 3
    per_view = views.view(6, 2, 3, 4, 5)
    torch.testing.assert_close(per_view[0], 0.9 * x)
    torch.testing.assert_close(per_view[5], (1.1 * x).flip(dims=(3, )))
    merged = merge_views(views * 2, flipped)
    torch.testing.assert_close(merged, x * 2)  # mean of 0.9, 1.0, 1.1 is 1


def test_tta_views_raw_option_scales_raw_intensity_and_merge_flips_back():
    raw = torch.rand(2, 3, 4, 5) * 255
    mean = torch.tensor([100.0, 120.0, 140.0]).view(3, 1, 1)
    std = torch.tensor([50.0, 60.0, 70.0]).view(3, 1, 1)
    views, flipped = tta_views((raw - mean) / std, True, (0.9, 1.0, 1.1), mean, std, space='raw')
    assert views.shape == (12, 3, 4, 5) and flipped == [False] * 3 + [True] * 3
    per_view = views.view(6, 2, 3, 4, 5)
    torch.testing.assert_close(per_view[0], (0.9 * raw - mean) / std)
    torch.testing.assert_close(per_view[5], ((1.1 * raw - mean) / std).flip(dims=(3, )))
    # a per-pixel "model" commutes with flipping: merging gives the plain view average
    merged = merge_views(views * 2, flipped)
    expected = torch.stack([(s * raw - mean) / std for s in (0.9, 1.0, 1.1)]).mean(0) * 2
    torch.testing.assert_close(merged, expected)
    plain, flags = tta_views(raw, False, (1.0, ), None, None, space='raw')
    assert flags == [False] and torch.equal(plain, raw)


def test_protocol_validation_and_record():
    protocol = InferenceProtocol.from_cfg(dict(gating='predicted', intensities=[1.0]))
    record = protocol.record()
    assert record == dict(tta=dict(flip=True, intensities=[1.0]), intensity_space='normalized',
                          fusion_weights=[0.0, 0.3, 0.3, 0.4], map_merge='per_pixel',
                          align_corners=True, bg_alpha=10.0, gating='predicted',
                          gating_score='mean', gating_threshold=0.5, crf=False,
                          crf_params='public')
    with pytest.raises(ValueError, match=r"unknown keys \['mode'\]"):
        InferenceProtocol.from_cfg(dict(mode='whole'))
    with pytest.raises(ValueError, match='gating must be one of'):
        InferenceProtocol.from_cfg(dict(gating='gt'))
    with pytest.raises(ValueError, match='fusion_weights'):
        InferenceProtocol.from_cfg(dict(fusion_weights=(0, 0, 0, 0)))


def test_crf_without_pydensecrf_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pydensecrf', None)
    monkeypatch.setitem(sys.modules, 'pydensecrf.densecrf', None)
    with pytest.raises(ImportError, match='pip install pydensecrf2'):
        InferenceProtocol.from_cfg(dict(crf=True))


@pytest.mark.parametrize('params', ['public', 'affinitynet'])
def test_dense_crf_keeps_a_confident_segmentation(params):
    pytest.importorskip('pydensecrf.densecrf')
    image = np.zeros((12, 16, 3), np.uint8)
    image[:, 8:] = 200
    probs = np.zeros((2, 12, 16), np.float32)
    probs[0, :, :8], probs[1, :, 8:] = 0.9, 0.9
    probs[1, :, :8], probs[0, :, 8:] = 0.1, 0.1
    probs[:, 5, 3] = (0.45, 0.55)  # one uncertain, wrong pixel inside region 0
    refined = dense_crf(image, probs, params)
    assert refined.shape == (2, 12, 16)
    np.testing.assert_allclose(refined.sum(0), 1.0, atol=1e-4)
    expected = np.zeros((12, 16), int)
    expected[:, 8:] = 1
    np.testing.assert_array_equal(refined.argmax(0), expected)
    with pytest.raises(ValueError, match=r'\(12, 16, 3\) uint8 image'):
        dense_crf(image[:6], probs, params)

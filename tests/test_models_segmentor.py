"""WeaklySupervisedSegmentor: loss from image labels, predict fields and sizes, gatings, TTA."""
import pytest
import torch
from helpers import build_segmentor, labelled_samples, preprocess
from mmseg.structures import SegDataSample

import lpd_bench.models  # noqa: F401  (registers the modules)
from lpd_bench.models.inference import fuse_stage_maps


@pytest.fixture(scope='module')
def model():
    return build_segmentor()


def test_loss_mode_uses_image_labels(model):
    inputs, samples = preprocess(model, 48, 64, labelled_samples([[1, 0, 0, 1], [0, 1, 1, 0]],
                                                                 (48, 64)))
    model.train()
    try:
        losses = model(inputs, samples, mode='loss')
    finally:
        model.eval()
    assert set(losses) == {'loss_cls_s2', 'loss_cls_s3', 'loss_cls_s4'}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())


def test_tensor_mode_returns_raw_head_outputs(model):
    out = model(torch.randn(1, 3, 32, 48), mode='tensor')
    assert [tuple(m.shape[2:]) for m in out.sim_maps] == [(8, 12), (4, 6), (2, 3), (2, 3)]


def test_predict_fields_at_original_non_square_size(model):
    # 52 x 70 images padded to 64 x 80 by the preprocessor (size_divisor 16)
    labels = [[1, 0, 1, 0], [0, 0, 0, 1]]
    inputs, samples = preprocess(model, 52, 70, labelled_samples(labels, (52, 70)))
    assert tuple(inputs.shape[2:]) == (64, 80)
    with torch.no_grad():
        results = model.predict(inputs, samples)
    for result, label in zip(results, labels):
        assert tuple(result.seg_logits.data.shape) == (5, 52, 70)
        for field in ('pred_sem_seg', 'pred_sem_seg_oracle', 'pred_sem_seg_predicted'):
            assert tuple(getattr(result, field).data.shape) == (1, 52, 70)
        assert torch.equal(result.pred_sem_seg.data, result.pred_sem_seg_oracle.data)
        assert torch.equal(result.pred_sem_seg.data, result.seg_logits.data.argmax(0, True))
        absent = [c for c in range(4) if not label[c]]
        assert not torch.isin(result.pred_sem_seg_oracle.data, torch.tensor(absent)).any()
        assert result.seg_logits.data[absent].eq(0).all()
        protocol = result.metainfo['protocol']
        assert protocol['gating'] == 'oracle' and protocol['tta'] == dict(
            flip=True, intensities=[0.9, 1.0, 1.1])
        assert protocol['fusion_weights'] == [0.0, 0.3, 0.3, 0.4] and protocol['crf'] is False
        assert 'pred_sem_seg_oracle_crf' not in result


def test_predict_resizes_to_a_different_original_size(model):
    inputs, samples = preprocess(model, 64, 48, labelled_samples([[1, 1, 1, 1]], (100, 75)))
    with torch.no_grad():
        result = model.predict(inputs, samples)[0]
    assert tuple(result.seg_logits.data.shape) == (5, 100, 75)


def test_chunked_views_match_one_batched_forward(model):
    inputs, samples = preprocess(model, 32, 32, labelled_samples([[1, 0, 1, 0]] * 2, (32, 32)))
    chunked = build_segmentor(max_views_per_forward=5)
    chunked.load_state_dict(model.state_dict())
    with torch.no_grad():
        full, _ = model.class_activation(inputs)
        parts, _ = chunked.class_activation(inputs)
    torch.testing.assert_close(full, parts)


def test_predicted_gating_works_without_image_labels():
    model = build_segmentor(gating='predicted', flip=False, intensities=(1.0, ))
    samples = [SegDataSample(metainfo=dict(ori_shape=(32, 32), img_shape=(32, 32)))]
    inputs, samples = preprocess(model, 32, 32, samples)
    with torch.no_grad():
        result = model.predict(inputs, samples)[0]
        assert 'pred_sem_seg_oracle' not in result
        assert torch.equal(result.pred_sem_seg.data, result.pred_sem_seg_predicted.data)
        with pytest.raises(KeyError, match="gating='oracle' needs metainfo 'img_label'"):
            build_segmentor().predict(inputs, samples)


def test_fusion_weights_must_match_head_stages():
    with pytest.raises(ValueError, match='one weight per head stage'):
        build_segmentor(fusion_weights=(0.5, 0.5))


def test_crf_adds_crf_variants_and_keeps_the_plain_ones(model):
    pytest.importorskip('pydensecrf.densecrf')
    labels = [[1, 0, 1, 0], [0, 1, 0, 1]]
    inputs, samples = preprocess(model, 32, 32, labelled_samples(labels, (32, 32)))
    with_crf = build_segmentor(crf=True, crf_workers=0)
    with_crf.load_state_dict(model.state_dict())
    with torch.no_grad():
        plain = model.predict(inputs, [s.clone() for s in samples])
        refined = with_crf.predict(inputs, [s.clone() for s in samples])
    for a, b, label in zip(plain, refined, labels):
        for gating in ('oracle', 'predicted'):
            assert torch.equal(getattr(a, f'pred_sem_seg_{gating}').data,
                               getattr(b, f'pred_sem_seg_{gating}').data)
            assert tuple(getattr(b, f'pred_sem_seg_{gating}_crf').data.shape) == (1, 32, 32)
        assert torch.equal(b.pred_sem_seg.data, b.pred_sem_seg_oracle_crf.data)
        assert torch.equal(b.pred_sem_seg.data, b.seg_logits.data.argmax(0, True))
        torch.testing.assert_close(b.seg_logits.data.sum(0), torch.ones(32, 32), atol=1e-4,
                                   rtol=0)
        assert b.metainfo['protocol']['crf'] is True
        assert b.metainfo['protocol']['crf_params'] == 'public'
    assert with_crf.set_crf(False) is True and with_crf.protocol.crf is False
    with torch.no_grad():
        off = with_crf.predict(inputs, [s.clone() for s in samples])
    assert 'pred_sem_seg_oracle_crf' not in off[0]
    assert with_crf.set_crf(True) is False and with_crf.protocol.crf is True


def test_map_merge_and_gating_score_options_reach_the_head(model):
    inputs, _ = preprocess(model, 32, 32, labelled_samples([[1, 0, 1, 0]], (32, 32)))
    single_view = dict(flip=False, intensities=(1.0, ))
    for options in (dict(), dict(map_merge='per_image', gating_score='softmax')):
        segmentor = build_segmentor(**single_view, **options)
        segmentor.load_state_dict(model.state_dict())
        with torch.no_grad():
            cams, probs = segmentor.class_activation(inputs)
            maps, head_probs = segmentor.decode_head.predict_class_maps(
                segmentor.extract_feat(inputs), [1, 2, 3], **options)
        torch.testing.assert_close(probs, head_probs)
        torch.testing.assert_close(cams, fuse_stage_maps(maps, (0.0, 0.3, 0.3, 0.4), (32, 32)))


def test_class_argmax_is_argmax_with_ties_to_the_first_class():
    from lpd_bench.models.segmentor import class_argmax
    torch.manual_seed(0)
    scores = torch.randn(5, 37, 41)
    scores[:, :5] = 0.0  # all classes tied: class 0
    scores[2:4, 5:9] = 9.0  # classes 2 and 3 tied: class 2
    scores[:, 9, 0] = float('nan')  # NaN wins, as in argmax
    scores[1, 10, 0] = -float('inf')
    labels = class_argmax(scores)
    assert labels.shape == (1, 37, 41) and labels.dtype == torch.int64
    assert torch.equal(labels, scores.argmax(dim=0, keepdim=True))
    assert (labels[0, :5] == 0).all() and (labels[0, 5:9] == 2).all()
    # on a non-contiguous view too
    view = torch.randn(41, 37, 5).permute(2, 1, 0)
    assert torch.equal(class_argmax(view), view.argmax(dim=0, keepdim=True))

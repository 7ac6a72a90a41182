"""The two hooks the second stage adds to existing components, and that they change no output:
``WeaklySupervisedSegmentor.set_predict_gatings`` (the pseudo-mask step computes the oracle gating
only) and ``WSSSMetric(default_protocol=...)`` (an ordinary mmseg model's ``pred_sem_seg`` scored
as the gating ``none``)."""
import copy
import json

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from lpd_bench.evaluation.wsss_metric import WSSSMetric
from mmseg.structures import SegDataSample

from helpers import build_segmentor, labelled_samples, preprocess

LABELS = [[1, 0, 0, 1], [0, 1, 1, 0]]


@pytest.mark.parametrize('crf', [False, True])
@torch.no_grad()
def test_predict_restricted_to_the_oracle_gating_gives_the_same_oracle_output(crf):
    model = build_segmentor(crf=crf, crf_workers=0)
    inputs, samples = preprocess(model, 32, 32, labelled_samples(LABELS, (32, 32)))
    full = model.predict(inputs, copy.deepcopy(samples))
    assert model.set_predict_gatings(('oracle', )) is None
    only = model.predict(inputs, copy.deepcopy(samples))
    suffix = '_crf' if crf else ''
    for a, b in zip(full, only):
        fields = {key for key in b.keys() if key.startswith('pred_sem_seg_')}
        assert fields == {f'pred_sem_seg_oracle{suffix}'} | ({'pred_sem_seg_oracle'} if crf
                                                              else set())
        assert torch.equal(a.seg_logits.data, b.seg_logits.data)
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)
        assert b.protocol == a.protocol
    assert model.set_predict_gatings(None) == ('oracle', )
    assert {k for k in model.predict(inputs, copy.deepcopy(samples))[0].keys()
            if k.startswith('pred_sem_seg_')} >= {'pred_sem_seg_oracle', 'pred_sem_seg_predicted'}


def test_predict_gatings_must_be_known_and_hold_the_configured_one():
    model = build_segmentor()  # gating 'oracle'
    with pytest.raises(ValueError, match=r"each must be one of \('oracle', 'predicted'\) and "
                       r"the configured gating 'oracle' among them"):
        model.set_predict_gatings(('predicted', ))
    with pytest.raises(ValueError, match='each must be one of'):
        model.set_predict_gatings(('oracle', 'none'))
    assert model.predict_gatings is None


def plain_sample(gt, pred, protocol=None):
    """What an ordinary mmseg segmentor's sample holds: gt, pred_sem_seg, no protocol record."""
    metainfo = dict(img_path='a.png')
    if protocol is not None:
        metainfo['protocol'] = protocol
    data = SegDataSample(metainfo=metainfo)
    data.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    data.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
    return data.to_dict()


GT = np.array([[0, 0, 1, 4]])
PRED = np.array([[0, 1, 1, 0]])


def test_default_protocol_scores_a_plain_prediction_as_gating_none(tmp_path):
    out = tmp_path / 'metrics.json'
    protocol = dict(stage=2, gating='none', crf=False, tta=None)
    metric = WSSSMetric(output_file=str(out), default_protocol=protocol)
    metric.process({}, [plain_sample(GT, PRED)])
    flat = metric.evaluate(1)
    # TUM: TP 1, FN 1 (->STR), FP 1 (gt BG) -> 1/3; STR: TP 1, FP 1 -> 1/2
    assert flat['none/bg_counted/IoU.TUM'] == pytest.approx(100 / 3)
    assert flat['none/bg_counted/IoU.STR'] == pytest.approx(50)
    assert flat['mIoU'] == pytest.approx((100 / 3 + 50) / 2)  # no oracle: the 'none' variant
    written = json.loads(out.read_text())
    assert written['protocol'] == protocol and list(written['results']) == ['none']


def test_without_default_protocol_a_plain_prediction_is_refused():
    metric = WSSSMetric()
    with pytest.raises(KeyError, match="no pred_sem_seg with metainfo protocol\\['gating'\\] "
                       "\\(or the metric's default_protocol\\)"):
        metric.process({}, [plain_sample(GT, PRED)])


def test_a_sample_with_its_own_protocol_keeps_it():
    metric = WSSSMetric(default_protocol=dict(gating='none'))
    metric.process({}, [plain_sample(GT, PRED, protocol=dict(gating='oracle', crf=True))])
    assert list(metric.results[0]['confusion']) == ['oracle_crf']
    assert metric.results[0]['protocol'] == dict(gating='oracle', crf=True)

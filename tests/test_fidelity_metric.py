"""Fidelity of the metric to docs/protocol.md, section 5: three background protocols and both
FwIoUs.

A 2x3 toy mask scored by hand, and the matrix-level ``bg_from_gt`` (the BG row moved to the BG
column) equal to the per-pixel definition of the WSSS-Tissue/MLPS code (``pred[gt == 4] = 4``).
"""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from lpd_bench.evaluation.wsss_metric import (PROTOCOLS, WSSSMetric, confusion_matrix,
                                              protocol_matrix, protocol_scores)
from mmseg.structures import SegDataSample

# Classes: 0 TUM, 1 STR, 2 LYM, 3 NEC, 4 BG.
GT = np.array([[0, 0, 4],
               [1, 1, 4]])
PRED = np.array([[0, 4, 1],
                 [1, 1, 0]])
# (gt, pred) pairs: (0,0) (0,4) (4,1) (1,1) (1,1) (4,0); gt pixels TUM 2, STR 2, BG 2.
FULL = np.zeros((5, 5), dtype=np.int64)
FULL[0, 0] = FULL[0, 4] = FULL[4, 1] = FULL[4, 0] = 1
FULL[1, 1] = 2
# bg_counted:  TUM TP 1 FP 1 (gt BG) FN 1 (->BG)   IoU 1/3  Dice 2/4
#              STR TP 2 FP 1 (gt BG) FN 0          IoU 2/3  Dice 4/5
#              BG  TP 0 FP 1 (gt TUM) FN 2         IoU 0    Dice 0
#   mIoU (1/3 + 2/3) / 2 = 50, mDice (50 + 80) / 2 = 65
#   FwIoU (5 classes) (2 * 1/3 + 2 * 2/3 + 2 * 0) / 6 = 1/3; FwIoU_tissue (1/3 + 2/3) / 2 = 1/2
# bg_ignored:  gt-BG row dropped. TUM TP 1 FP 0 FN 1: 1/2, Dice 2/3; STR 2/2: 1, Dice 1
#   mIoU 75, mDice 250/3; FwIoU: BG has no gt pixels, weight 0 -> (2 * 1/2 + 2 * 1) / 4 = 3/4
# bg_from_gt:  prediction [[0, 4, 4], [1, 1, 4]]. Tissue as bg_ignored; BG TP 2 FP 1 FN 0: 2/3,
#   Dice 4/5; FwIoU (2 * 1/2 + 2 * 1 + 2 * 2/3) / 6 = 13/18; FwIoU_tissue 3/4
EXPECTED = {
    'bg_counted': dict(IoU=dict(TUM=100 / 3, STR=200 / 3, BG=0.0), Dice=dict(TUM=50, STR=80, BG=0),
                       mIoU=50, mDice=65, FwIoU=100 / 3, FwIoU_tissue=50),
    'bg_ignored': dict(IoU=dict(TUM=50, STR=100), Dice=dict(TUM=200 / 3, STR=100),
                       mIoU=75, mDice=250 / 3, FwIoU=75, FwIoU_tissue=75),
    'bg_from_gt': dict(IoU=dict(TUM=50, STR=100, BG=200 / 3), Dice=dict(TUM=200 / 3, STR=100,
                                                                         BG=80),
                       mIoU=75, mDice=250 / 3, FwIoU=1300 / 18, FwIoU_tissue=75),
}


def test_toy_confusion_matrix():
    assert (confusion_matrix(GT, PRED) == FULL).all()


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_toy_scores_by_hand(protocol):
    scores = protocol_scores(confusion_matrix(GT, PRED), protocol)
    want = EXPECTED[protocol]
    for kind in ('IoU', 'Dice'):
        for name, value in want[kind].items():
            assert scores[kind][name] == pytest.approx(value), (kind, name)
        assert np.isnan(scores[kind]['LYM']) and np.isnan(scores[kind]['NEC'])
        assert ('BG' in scores[kind]) == (protocol != 'bg_ignored')
    for key in ('mIoU', 'mDice', 'FwIoU', 'FwIoU_tissue'):
        assert scores[key] == pytest.approx(want[key]), key


def test_toy_protocol_matrices():
    ignored = FULL.copy()
    ignored[4] = 0
    from_gt = ignored.copy()
    from_gt[4, 4] = 2
    assert (protocol_matrix(FULL, 'bg_counted') == FULL).all()
    assert (protocol_matrix(FULL, 'bg_ignored') == ignored).all()
    assert (protocol_matrix(FULL, 'bg_from_gt') == from_gt).all()
    with pytest.raises(ValueError, match="unknown protocol 'bg_x'"):
        protocol_matrix(FULL, 'bg_x')


def copy_gt_background(gt, pred):
    """The per-pixel definition of the WSSS-Tissue/MLPS code: ``lp[gt == 4] = 4``."""
    pred = pred.copy()
    pred[gt == 4] = 4
    return pred


@pytest.mark.parametrize('seed', range(5))
def test_matrix_bg_from_gt_equals_the_per_pixel_copy(seed):
    rng = np.random.default_rng(seed)
    gt = rng.choice([0, 1, 2, 3, 4, 4, 255], size=(3, 37, 41))  # BG-heavy, with padding
    pred = rng.integers(0, 5, size=gt.shape)
    full = confusion_matrix(gt, pred)
    per_pixel = confusion_matrix(gt, copy_gt_background(gt, pred))
    assert (protocol_matrix(full, 'bg_from_gt') == per_pixel).all()
    by_matrix, by_pixel = protocol_scores(full, 'bg_from_gt'), protocol_scores(per_pixel,
                                                                               'bg_counted')
    for key in ('mIoU', 'mDice', 'FwIoU', 'FwIoU_tissue'):
        assert by_matrix[key] == pytest.approx(by_pixel[key])
    assert by_matrix['IoU'] == pytest.approx(by_pixel['IoU'], nan_ok=True)
    # On the tissue classes the copy removes exactly the FPs that bg_ignored drops, so the
    # tissue scores of the two conventions coincide; only BG's IoU and the 5-class FwIoU differ.
    ignored = protocol_scores(full, 'bg_ignored')
    assert ignored['mIoU'] == pytest.approx(by_matrix['mIoU'])
    assert ignored['FwIoU'] == pytest.approx(ignored['FwIoU_tissue'])


def test_metric_json_blocks_of_the_toy_mask(tmp_path):
    data = SegDataSample(metainfo=dict(img_path='toy.png', protocol=dict(gating='oracle')))
    data.gt_sem_seg = PixelData(data=torch.as_tensor(GT)[None])
    data.set_data({'pred_sem_seg_oracle': PixelData(data=torch.as_tensor(PRED)[None]),
                   'pred_sem_seg_oracle_crf': PixelData(
                       data=torch.as_tensor(copy_gt_background(GT, PRED))[None])})
    metric = WSSSMetric()
    metric.process({}, [data.to_dict()])
    out = metric.evaluate(1)
    for protocol, want in EXPECTED.items():
        assert out[f'oracle/{protocol}/FwIoU'] == pytest.approx(want['FwIoU'])
        assert out[f'oracle/{protocol}/FwIoU_tissue'] == pytest.approx(want['FwIoU_tissue'])
    # a prediction that already has the GT background scores the same under counted and from_gt
    assert out['oracle_crf/bg_counted/FwIoU'] == pytest.approx(EXPECTED['bg_from_gt']['FwIoU'])
    assert out['FwIoU'] == pytest.approx(EXPECTED['bg_counted']['FwIoU'])  # oracle, no CRF

"""WSSSMetric on hand-computed confusion matrices (three protocols, NaN, variants, JSON file)."""
import json
import logging
import math
import os

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.structures import PixelData

from lpd_bench.evaluation.wsss_metric import WSSSMetric, confusion_matrix
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

# Classes: 0 TUM, 1 STR, 2 LYM, 3 NEC, 4 BG; 255 = padding.
GT = np.array([[0, 0, 0, 1, 1, 4],
               [2, 2, 4, 4, 255, 255]])
PRED = np.array([[0, 0, 1, 1, 4, 0],
                 [2, 0, 4, 2, 3, 3]])
# Hand count of (gt, pred) pairs, padding dropped:
#   (0,0)x2 (0,1) (1,1) (1,4) (4,0) (2,2) (2,0) (4,4) (4,2)
# bg_counted, per class: TP, FP, FN
#   TUM 2, 2 (gt LYM->0, gt BG->0), 1 (->STR)        IoU 2/5   Dice 4/7
#   STR 1, 1 (gt TUM->1), 1 (->BG)                   IoU 1/3   Dice 2/4
#   LYM 1, 1 (gt BG->2), 1 (->TUM)                   IoU 1/3   Dice 2/4
#   NEC 0, 0, 0                                      IoU NaN   (absent)
#   BG  1, 1 (gt STR->4), 2 (->TUM, ->LYM)           IoU 1/4   Dice 2/5
# bg_ignored drops the gt-BG pixels: TUM FP 1, LYM FP 0, others unchanged.
#   TUM IoU 2/4 Dice 4/6; STR 1/3, 2/4; LYM 1/2, 2/3
# bg_from_gt moves the gt-BG row to the BG column: the tissue scores of bg_ignored, and
#   BG TP 3, FP 1 (gt STR->4), FN 0                  IoU 3/4   Dice 6/7
# FwIoU_tissue weights = gt pixels per tissue class: TUM 3, STR 2, LYM 2 (same in every protocol).
# FwIoU (5 classes) adds BG with weight = its gt pixels: 3 (bg_counted, bg_from_gt), 0 (bg_ignored).
BG_COUNTED = dict(IoU=[40, 100 / 3, 100 / 3], Dice=[400 / 7, 50, 50], bg_iou=25, bg_dice=40)
BG_IGNORED = dict(IoU=[50, 100 / 3, 50], Dice=[400 / 6, 50, 200 / 3])
BG_FROM_GT = dict(BG_IGNORED, bg_iou=75, bg_dice=600 / 7)


def fwiou_tissue(ious):
    return (3 * ious[0] + 2 * ious[1] + 2 * ious[2]) / 7


def fwiou(want, bg_pixels=3):
    return (7 * fwiou_tissue(want['IoU']) + bg_pixels * want.get('bg_iou', 0)) / (7 + bg_pixels)


def sample(gt, preds, protocol=None, path='img.png'):
    data = SegDataSample(metainfo=dict(img_path=path, protocol=protocol or dict(gating='oracle')))
    data.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    for key, pred in preds.items():
        data.set_data({key: PixelData(data=torch.as_tensor(pred)[None])})
    return data.to_dict()


def evaluate(metric, samples):
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_confusion_matrix_counts_pairs_and_ignores_padding():
    matrix = confusion_matrix(GT, PRED)
    assert matrix.sum() == 10
    assert matrix[0, 0] == 2 and matrix[4, 2] == 1 and matrix[1, 4] == 1 and matrix[3].sum() == 0


def test_hand_computed_scores_three_protocols(tmp_path):
    metric = METRICS.build(dict(type='WSSSMetric'))
    out = evaluate(metric, [sample(GT, {'pred_sem_seg_oracle': PRED})])
    for protocol, want in (('bg_counted', BG_COUNTED), ('bg_ignored', BG_IGNORED),
                           ('bg_from_gt', BG_FROM_GT)):
        prefix = f'oracle/{protocol}/'
        for name, iou, dice in zip(('TUM', 'STR', 'LYM'), want['IoU'], want['Dice']):
            assert out[f'{prefix}IoU.{name}'] == pytest.approx(iou)
            assert out[f'{prefix}Dice.{name}'] == pytest.approx(dice)
        assert math.isnan(out[f'{prefix}IoU.NEC'])
        assert out[f'{prefix}mIoU'] == pytest.approx(np.mean(want['IoU']))
        assert out[f'{prefix}mDice'] == pytest.approx(np.mean(want['Dice']))
        assert out[f'{prefix}FwIoU_tissue'] == pytest.approx(fwiou_tissue(want['IoU']))
        bg_pixels = 0 if protocol == 'bg_ignored' else 3
        assert out[f'{prefix}FwIoU'] == pytest.approx(fwiou(want, bg_pixels))
    assert out['oracle/bg_counted/FwIoU'] == pytest.approx((120 + 400 / 3 + 75) / 10)
    for protocol, want in (('bg_counted', BG_COUNTED), ('bg_from_gt', BG_FROM_GT)):
        assert out[f'oracle/{protocol}/IoU.BG'] == pytest.approx(want['bg_iou'])
        assert out[f'oracle/{protocol}/Dice.BG'] == pytest.approx(want['bg_dice'])
    assert 'oracle/bg_ignored/IoU.BG' not in out
    # flat keys = oracle gating, background counted (paper protocol); FwIoU over 5 classes
    for key in ('mIoU', 'mDice', 'FwIoU'):
        assert out[key] == out[f'oracle/bg_counted/{key}']


def test_matrix_is_dataset_level_not_per_image():
    """Two half-images give the scores of the whole image, not a mean of per-image scores."""
    metric = WSSSMetric()
    out = evaluate(metric, [sample(GT[:1], {'pred_sem_seg_oracle': PRED[:1]}),
                            sample(GT[1:], {'pred_sem_seg_oracle': PRED[1:]})])
    assert out['mIoU'] == pytest.approx(np.mean(BG_COUNTED['IoU']))


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(f'{record.levelname} {record.getMessage()}')


def test_absent_class_is_nan_and_warned_and_table_logged():
    records = Records()
    MMLogger.get_instance('test_metric_log').addHandler(records)  # the metric's current logger
    out = evaluate(WSSSMetric(), [sample(GT, {'pred_sem_seg_oracle': PRED})])
    assert math.isnan(out['oracle/bg_counted/Dice.NEC'])
    assert not math.isnan(out['mIoU'])
    logged = '\n'.join(records.lines)
    assert "WARNING WSSSMetric: ['NEC'] absent from ground truth and prediction" in logged
    assert 'WSSSMetric, oracle gating, no CRF (%)' in logged
    assert '| mean (tissue)  |     35.56      |' in logged  # the per-class table
    assert '| FwIoU (5 cl.)  |     32.83      |' in logged


def test_class_only_predicted_scores_zero_not_nan():
    pred = PRED.copy()
    pred[0, 0] = 3  # NEC predicted on a TUM pixel: NEC has FP 1, so IoU 0
    out = evaluate(WSSSMetric(), [sample(GT, {'pred_sem_seg_oracle': pred})])
    assert out['oracle/bg_counted/IoU.NEC'] == 0
    assert out['oracle/bg_counted/IoU.TUM'] == pytest.approx(100 / 5)


def test_multiple_gatings_are_separate():
    perfect = np.where(GT == 255, 0, GT)
    out = evaluate(WSSSMetric(), [sample(GT, {'pred_sem_seg_oracle': PRED,
                                              'pred_sem_seg_predicted': perfect})])
    assert out['predicted/bg_counted/mIoU'] == pytest.approx(100)
    assert out['predicted/bg_ignored/FwIoU'] == pytest.approx(100)
    assert out['mIoU'] == pytest.approx(np.mean(BG_COUNTED['IoU']))  # oracle, not predicted


def test_crf_variants_are_scored_and_flat_keys_stay_oracle_without_crf():
    perfect = np.where(GT == 255, 0, GT)
    out = evaluate(WSSSMetric(), [sample(GT, {'pred_sem_seg_oracle_crf': perfect,
                                              'pred_sem_seg_oracle': PRED,
                                              'pred_sem_seg_predicted_crf': perfect,
                                              'pred_sem_seg_predicted': PRED})])
    assert out['oracle_crf/bg_counted/mIoU'] == pytest.approx(100)
    assert out['predicted_crf/bg_from_gt/FwIoU'] == pytest.approx(100)
    # save_best reads mIoU: oracle gating, BG counted, no CRF, even though oracle_crf sorts after
    assert out['mIoU'] == pytest.approx(np.mean(BG_COUNTED['IoU']))
    assert out['FwIoU'] == out['oracle/bg_counted/FwIoU']


def test_any_variant_name_is_scored():
    out = evaluate(WSSSMetric(), [sample(GT, {'pred_sem_seg_mine': PRED})])
    assert out['mine/bg_from_gt/IoU.BG'] == pytest.approx(BG_FROM_GT['bg_iou'])
    assert out['mIoU'] == out['mine/bg_counted/mIoU']  # no oracle: the only variant, warned


def test_falls_back_to_pred_sem_seg_named_by_protocol_gating():
    out = evaluate(WSSSMetric(), [sample(GT, {'pred_sem_seg': PRED}, dict(gating='predicted'))])
    assert out['predicted/bg_counted/mIoU'] == pytest.approx(np.mean(BG_COUNTED['IoU']))
    assert out['mIoU'] == out['predicted/bg_counted/mIoU']
    assert not any(key.startswith('oracle/') for key in out)
    # with CRF on, pred_sem_seg is the CRF output of the configured gating (contract C1)
    out = evaluate(WSSSMetric(), [sample(GT, {'pred_sem_seg': PRED},
                                         dict(gating='oracle', crf=True))])
    assert 'oracle_crf/bg_counted/mIoU' in out and 'oracle/bg_counted/mIoU' not in out


def test_missing_gating_is_a_clear_error():
    metric = WSSSMetric()
    with pytest.raises(KeyError, match=r"x\.png.*protocol\['gating'\]"):
        metric.process({}, [sample(GT, {'pred_sem_seg': PRED}, dict(crf=False), 'x.png')])


def test_bad_labels_and_shapes_name_the_image():
    with pytest.raises(ValueError, match=r'y\.png \(oracle\): prediction has labels \[7\]'):
        WSSSMetric().process({}, [sample(GT, {'pred_sem_seg_oracle': np.full_like(PRED, 7)},
                                         path='y.png')])
    with pytest.raises(ValueError, match=r'z\.png \(oracle\): ground truth has 12 pixels'):
        WSSSMetric().process({}, [sample(GT, {'pred_sem_seg_oracle': PRED[:1]}, path='z.png')])


def test_json_output_file_is_written_atomically(tmp_path):
    path = tmp_path / 'eval' / 'metrics.json'
    protocol = dict(gating='oracle', crf=False, tta=True, fusion_weights=[0.0, 0.3, 0.3, 0.4])
    evaluate(WSSSMetric(output_file=str(path)), [sample(GT, {'pred_sem_seg_oracle': PRED,
                                                             'pred_sem_seg_predicted': PRED},
                                                        protocol)])
    assert os.listdir(path.parent) == ['metrics.json']  # no temp file left behind
    result = json.loads(path.read_text())  # strict JSON: NaN was written as null
    assert result['protocol'] == protocol
    assert result['classes'] == ['TUM', 'STR', 'LYM', 'NEC', 'BG']
    assert set(result['results']) == {'oracle', 'predicted'}
    counted = result['results']['oracle']['bg_counted']
    assert counted['IoU']['TUM'] == pytest.approx(40) and counted['IoU']['NEC'] is None
    assert counted['mDice'] == pytest.approx(np.mean(BG_COUNTED['Dice']))
    assert counted['confusion'] == confusion_matrix(GT, PRED).tolist()
    ignored = result['results']['oracle']['bg_ignored']
    assert ignored['confusion'][4] == [0] * 5 and ignored['confusion'][:4] == counted['confusion'][:4]
    assert set(ignored['IoU']) == {'TUM', 'STR', 'LYM', 'NEC'}
    from_gt = result['results']['oracle']['bg_from_gt']
    assert from_gt['confusion'][4] == [0, 0, 0, 0, 3] and from_gt['confusion'][:4] == \
        counted['confusion'][:4]
    assert set(from_gt['IoU']) == set(result['classes'])
    assert counted['FwIoU_tissue'] == pytest.approx(fwiou_tissue(BG_COUNTED['IoU']))


def test_different_protocols_in_one_evaluation_are_rejected():
    with pytest.raises(ValueError, match='different protocol switches'):
        evaluate(WSSSMetric(), [sample(GT, {'pred_sem_seg_oracle': PRED}, dict(crf=False)),
                                sample(GT, {'pred_sem_seg_oracle': PRED}, dict(crf=True))])


def test_per_image_matrices_in_order_and_summing_to_the_split(tmp_path):
    path = tmp_path / 'metrics.json'
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 5, (4, 6)) for _ in range(3)]
    gts[1][0, :2] = 255
    samples = [sample(gt, {'pred_sem_seg_oracle': rng.integers(0, 5, gt.shape),
                           'pred_sem_seg_none': rng.integers(0, 5, gt.shape)},
                      path=f'/data/test/img/i{n}.png') for n, gt in enumerate(gts)]
    del samples[2]['pred_sem_seg_none']  # a variant an image lacks: a zero matrix there
    evaluate(WSSSMetric(output_file=str(path)), samples)
    text = path.read_text()
    result = json.loads(text)
    per_image = result['per_image']
    assert per_image['names'] == ['i0.png', 'i1.png', 'i2.png']
    assert set(per_image['confusion']) == {'oracle', 'none'}
    for variant, matrices in per_image['confusion'].items():
        matrices = np.array(matrices)
        assert matrices.shape == (3, 5, 5) and matrices.dtype == np.int64
        assert (matrices.sum(axis=0) == result['results'][variant]['bg_counted']['confusion']).all()
        for n, one in enumerate(samples):
            if f'pred_sem_seg_{variant}' in one:
                pred = one[f'pred_sem_seg_{variant}']['data'].squeeze().numpy()
                assert (matrices[n] == confusion_matrix(gts[n], pred)).all()
    assert not np.array(per_image['confusion']['none'][2]).any()
    assert matrices[1].sum() == 22  # padding dropped
    # compact: no indentation inside the arrays, the rest indented as before
    line = next(row for row in text.splitlines() if row.strip().startswith('"oracle": [['))
    assert ' ' not in line.strip().split(': ', 1)[1]
    assert '\n  "protocol": {' in text and text.endswith('}\n')


def test_gating_none_is_scored_like_any_variant():
    perfect = np.where(GT == 255, 0, GT)
    out = evaluate(WSSSMetric(), [sample(GT, {'pred_sem_seg_oracle': PRED,
                                              'pred_sem_seg_none': perfect,
                                              'pred_sem_seg_none_crf': PRED})])
    assert out['none/bg_counted/mIoU'] == pytest.approx(100)
    assert out['none_crf/bg_counted/mIoU'] == pytest.approx(np.mean(BG_COUNTED['IoU']))
    assert out['mIoU'] == out['oracle/bg_counted/mIoU']


def _distributed_rank(rank, world, port, samples, out, collect_dir):
    import torch.distributed as torch_dist
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch_dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        # DefaultSampler without shuffle: padded to a multiple of the world size with the first
        # samples again, rank r takes every world-th one from r
        padded = samples + samples[:(-len(samples)) % world]
        metric = WSSSMetric(output_file=out, collect_dir=collect_dir)
        metric.process({}, padded[rank::world])
        metric.evaluate(len(samples))
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow  # two gloo processes, each importing mmseg (~30 s on 2 shared cores)
def test_per_image_stays_aligned_in_distributed_evaluation(tmp_path):
    import socket
    import torch.multiprocessing as mp
    rng = np.random.default_rng(1)
    gts = [rng.integers(0, 5, (3, 4)) for _ in range(5)]
    preds = [rng.integers(0, 5, (3, 4)) for _ in range(5)]
    samples = [sample(gt, {'pred_sem_seg_oracle': pred}, path=f'img/p{n}.png')
               for n, (gt, pred) in enumerate(zip(gts, preds))]
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    out = tmp_path / 'metrics.json'
    mp.spawn(_distributed_rank, args=(2, port, samples, str(out), str(tmp_path / 'collect')),
             nprocs=2)
    result = json.loads(out.read_text())
    assert result['num_images'] == 5  # the sampler's duplicate dropped
    assert result['per_image']['names'] == [f'p{n}.png' for n in range(5)]
    matrices = np.array(result['per_image']['confusion']['oracle'])
    for n in range(5):
        assert (matrices[n] == confusion_matrix(gts[n], preds[n])).all()
    assert (matrices.sum(0) == result['results']['oracle']['bg_counted']['confusion']).all()

"""The quality score of val pseudo-masks (lpd_bench.stage2.quality) against hand-computed IoUs."""
import numpy as np
import pytest

from lpd_bench.data.layouts import BCSS
from lpd_bench.data.validation import DatasetError
from lpd_bench.stage2.mask_folder import write_mask
from lpd_bench.stage2.quality import score_pseudo_masks

# Two 4 x 4 val images (0 TUM, 1 STR, 4 BG).
# a: ground truth all TUM; pseudo-mask TUM but its last row STR.
# b: ground truth STR (top half) and BG (bottom half); pseudo-mask all STR.
GT = {'a.png': np.zeros((4, 4), np.uint8),
      'b.png': np.array([[1] * 4] * 2 + [[4] * 4] * 2, np.uint8)}
PSEUDO = {'a.png': np.array([[0] * 4] * 3 + [[1] * 4], np.uint8),
          'b.png': np.ones((4, 4), np.uint8)}
# bg_counted: TUM TP 12, FN 4 -> 12/16; STR TP 8, FP 4 (gt TUM) + 8 (gt BG) -> 8/20;
# LYM, NEC absent (left out of the mean); BG TP 0 -> 0.
# bg_ignored: the gt-BG pixels dropped: STR FP 4 -> 8/12.


def write_set(root, pseudo, layout=BCSS):
    (root / 'val' / 'mask').mkdir(parents=True)
    (root / 'pseudo').mkdir()
    for name, mask in GT.items():
        write_mask(root / 'val' / 'mask' / name, mask, layout.palette)
        write_mask(root / 'pseudo' / name, pseudo[name], layout.palette)
    return root / 'pseudo'


def test_val_score_is_the_hand_computed_miou(tmp_path):
    score = score_pseudo_masks(write_set(tmp_path, PSEUDO), tmp_path)
    counted = score['results']['bg_counted']
    assert counted['IoU'] == pytest.approx({'TUM': 75.0, 'STR': 40.0, 'LYM': None, 'NEC': None,
                                            'BG': 0.0}, nan_ok=True)
    assert score['mIoU'] == counted['mIoU'] == pytest.approx(57.5)
    assert score['results']['bg_ignored']['mIoU'] == pytest.approx((75 + 200 / 3) / 2)
    assert counted['confusion'][0][:2] == [12, 4] and counted['confusion'][4][1] == 8
    assert score['num_images'] == 2 and score['coverage'] == 1.0
    assert score['scored_pixels'] == 32


def test_ignored_pseudo_mask_pixels_are_not_scored(tmp_path):
    pseudo = dict(PSEUDO, **{'a.png': np.array([[0] * 4] * 3 + [[255] * 4], np.uint8)})
    score = score_pseudo_masks(write_set(tmp_path, pseudo), tmp_path)
    # TUM: TP 12, nothing missed among the scored pixels; STR: TP 8, FP 8 (gt BG)
    assert score['results']['bg_counted']['IoU']['TUM'] == pytest.approx(100.0)
    assert score['results']['bg_counted']['IoU']['STR'] == pytest.approx(50.0)
    assert score['mIoU'] == pytest.approx(75.0)
    assert score['coverage'] == pytest.approx(28 / 32) and score['scored_pixels'] == 28


def test_class_names_follow_the_layout(tmp_path):
    score = score_pseudo_masks(write_set(tmp_path, PSEUDO), tmp_path, layout='luad')
    assert list(score['results']['bg_counted']['IoU']) == ['TE', 'NEC', 'LYM', 'TAS', 'BG']


def test_missing_pseudo_masks_and_the_train_split_are_refused(tmp_path):
    folder = write_set(tmp_path, PSEUDO)
    (folder / 'b.png').unlink()
    with pytest.raises(DatasetError, match=r'b.png: no pseudo-mask for ground truth'):
        score_pseudo_masks(folder, tmp_path)
    with pytest.raises(ValueError, match='the train split has no masks'):
        score_pseudo_masks(folder, tmp_path, split='train')

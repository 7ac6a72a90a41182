"""LPD on BCSS-WSSS, paper setting: MiT-B1, k = 10, 18,744 iterations at batch 10, seed 42.

    python tools/train.py configs/lpd_bcss.py --cfg-options data_root=PATH
    python tools/test.py configs/lpd_bcss.py work_dirs/lpd_bcss/iter_18744.pth [--cfg-options ...]

Data root default: data/BCSS-WSSS. The public code tests the last checkpoint (above); the
best-on-val one (``best_mIoU_iter_*.pth``, chosen by the validation mIoU from the loss warm-up
plus one validation interval on) is the alternative (docs/protocol.md, section 6).
"""
_base_ = [
    './_base_/models/lpd_mit_b1.py',
    './_base_/datasets/bcss_wsss.py',
    './_base_/schedules/paper_18744it.py',
]
default_scope = 'mmseg'
custom_imports = dict(imports=['lpd_bench', 'baselines'], allow_failed_imports=False)

model = dict(data_preprocessor={{_base_.data_preprocessor}})

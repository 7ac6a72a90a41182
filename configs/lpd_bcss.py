"""LPD on BCSS-WSSS, paper setting: MiT-B1, k = 10, 18,744 iterations at batch 10, seed 42.

    python tools/train.py configs/lpd_bcss.py --cfg-options data_root=PATH
    python tools/test.py configs/lpd_bcss.py work_dirs/lpd_bcss/best_mIoU_iter_*.pth

Data root default: data/BCSS-WSSS. The best checkpoint is chosen by val mIoU; test on test.
"""
_base_ = [
    './_base_/models/lpd_mit_b1.py',
    './_base_/datasets/bcss_wsss.py',
    './_base_/schedules/paper_18744it.py',
]
default_scope = 'mmseg'
custom_imports = dict(imports=['lpd_bench', 'baselines'], allow_failed_imports=False)

model = dict(data_preprocessor={{_base_.data_preprocessor}})

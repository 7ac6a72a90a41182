"""Colour-statistics centroid rule on LUAD-HistoSeg, paper preset (no training):
``colour_rule_bcss.py`` reading LUAD-HistoSeg, as ``lpd_luad.py`` does.

    python -m baselines.colour_rule.fit configs/colour_rule_luad.py --out FIT.pth \
        --cfg-options data_root=PATH
    python tools/test.py configs/colour_rule_luad.py FIT.pth --cfg-options data_root=PATH

The rule reads BGR values 0..255 and normalises nothing: its model keeps the data preprocessor
of ``colour_rule_bcss.py`` (no mean/std).
"""
_base_ = ['./colour_rule_bcss.py', './_base_/datasets/luad_histoseg_switch.py']

dataset_type = {{_base_.luad_dataset_type}}
data_root = {{_base_.luad_data_root}}
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))

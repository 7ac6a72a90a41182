"""Colour-statistics centroid rule, CPU preset on LUAD-HistoSeg-layout synthetic data (no
training): ``colour_rule_synth_cpu.py`` reading ``LUADHistoSegDataset``.

    python -m baselines.colour_rule.fit configs/colour_rule_luad_synth_cpu.py --out FIT.pth
    python tools/test.py configs/colour_rule_luad_synth_cpu.py FIT.pth

The default synthetic set in the LUAD-HistoSeg layout (``data_root`` None: generated on first
use). Synthetic numbers are never LUAD-HistoSeg numbers.
"""
_base_ = ['./colour_rule_synth_cpu.py', './_base_/datasets/luad_histoseg_switch.py']

dataset_type = {{_base_.luad_dataset_type}}
train_dataloader = dict(dataset=dict(type=dataset_type))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = dict(dataset=dict(type=dataset_type))

"""Colour-statistics centroid rule, CPU preset on the default synthetic set (no training).

    python -m baselines.colour_rule.fit configs/colour_rule_synth_cpu.py --out FIT.pth
    python tools/test.py configs/colour_rule_synth_cpu.py FIT.pth

``colour_rule_bcss.py`` on the default synthetic set (``data_root=None``) with the CPU preset's
loaders (``_base_/datasets/synthetic_cpu.py``: no workers, batches of 8 / 16) but not its resize
to 112 px, a network's cost saving: the rule reads the images as loaded (224 px, BGR uint8).
Synthetic numbers are never BCSS-WSSS numbers.
"""
_base_ = ['./colour_rule_bcss.py']

data_root = None
cpu_loader = dict(num_workers=0, persistent_workers=False)
train_dataloader = dict(batch_size=8, **cpu_loader, dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=16, **cpu_loader, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader  # merged into the base test loader: same overrides, split 'test'

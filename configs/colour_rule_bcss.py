"""Colour-statistics centroid rule on BCSS-WSSS, paper preset (no training): a real floor.

    python -m baselines.colour_rule.fit configs/colour_rule_bcss.py --out FIT.pth \
        --cfg-options data_root=PATH
    python tools/test.py configs/colour_rule_bcss.py FIT.pth --cfg-options data_root=PATH

Data as the LPD paper config (``_base_/datasets/bcss_wsss.py``): the fit reads the single-label
images of the train split (its random flips dropped), the test is WSSSMetric on the test split.
The model has no parameters; its data preprocessor does not normalise (the rule reads BGR values
0..255). See baselines/colour_rule/README.md.
"""
_base_ = [
    './_base_/datasets/bcss_wsss.py',
    './_base_/default_runtime.py',
]
default_scope = 'mmseg'
custom_imports = dict(imports=['lpd_bench', 'baselines'], allow_failed_imports=False)

model = dict(
    type='ColourCentroidSegmentor',
    num_classes=4,
    block_size=8,
    smoothing=3,
    white_threshold=225.0,
    white_on='smoothed',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=None, std=None, bgr_to_rgb=False, pad_val=0,
        seg_pad_val=255, size_divisor=1),
    test_cfg=dict(gating='oracle'))

# The test loop is what the rule runs. mmengine wants a train loop and an optimiser next to the
# train_dataloader (which the fit reads): here they are, with a constructor that stops
# tools/train.py with the way to fit the rule instead.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=1)
optim_wrapper = dict(type='OptimWrapper', constructor='NotTrainedConstructor',
                     optimizer=dict(type='SGD', lr=0.0))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

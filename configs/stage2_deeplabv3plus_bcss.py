"""Second stage, second network on BCSS-WSSS: DeepLabV3+ R50-D8 trained on a stage-1 method's
train pseudo-masks, tested with no labels (docs/protocol.md, section 11).

    python tools/train.py configs/stage2_deeplabv3plus_bcss.py --cfg-options \
        data_root=/data/BCSS-WSSS pseudo_mask_dir=PSEUDO model.pretrained=resnet50_v1c.pth
    python tools/test.py configs/stage2_deeplabv3plus_bcss.py CHECKPOINT \
        --cfg-options data_root=/data/BCSS-WSSS

mmseg's DeepLabV3+ recipe (SGD 0.01, momentum 0.9, weight decay 5e-4, poly decay power 0.9 to
1e-4) over stage 1's length: 18,744 iterations at batch 10, validation and checkpoint once per
epoch (``../schedules/paper_18744it.py``).
"""
_base_ = [
    './_base_/stage2/deeplabv3plus_r50.py',
    './_base_/stage2/pseudo_masks_bcss.py',
    './_base_/schedules/paper_18744it.py',
]
custom_imports = dict(imports=['lpd_bench', 'baselines'], allow_failed_imports=False)

model = dict(data_preprocessor={{_base_.data_preprocessor}})

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005),
    clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=1e-4, by_epoch=False, begin=0, end=_base_.max_iters),
]

"""Second stage, paper preset on BCSS-WSSS: SegFormer MiT-B1 trained on a stage-1 method's train
pseudo-masks, tested with no labels (docs/protocol.md, section 11).

    python -m lpd_bench.stage2.pseudo_masks configs/lpd_bcss.py STAGE1.pth --out PSEUDO \
        --cfg-options data_root=/data/BCSS-WSSS
    python tools/train.py configs/stage2_segformer_b1_bcss.py --cfg-options \
        data_root=/data/BCSS-WSSS pseudo_mask_dir=PSEUDO backbone_checkpoint=mit_b1.pth
    python tools/test.py configs/stage2_segformer_b1_bcss.py \
        work_dirs/stage2_segformer_b1_bcss/iter_18744.pth --cfg-options data_root=/data/BCSS-WSSS

mmseg's SegFormer recipe (AdamW 6e-5, weight decay 0.01, no decay on norms and positional
blocks, head lr x 10, linear warm-up over 1,500 iterations, then linear decay) over stage 1's
length: 18,744 iterations at batch 10 (8 epochs), validation and checkpoint once per epoch, AMP on
CUDA (``../schedules/paper_18744it.py``). The schedule is our choice: no public number fixes one
for this dataset.
"""
_base_ = [
    './_base_/stage2/segformer_mit_b1.py',
    './_base_/stage2/pseudo_masks_bcss.py',
    './_base_/schedules/paper_18744it.py',
]
custom_imports = dict(imports=['lpd_bench', 'baselines'], allow_failed_imports=False)

model = dict(data_preprocessor={{_base_.data_preprocessor}})

optim_wrapper = dict(
    optimizer=dict(lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'pos_block': dict(decay_mult=0.0),
        'norm': dict(decay_mult=0.0),
        'head': dict(lr_mult=10.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500,
         end=_base_.max_iters),
]

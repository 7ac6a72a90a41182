"""Second stage, CPU preset on LUAD-HistoSeg-layout synthetic data: ``stage2_synth_cpu.py``
(the tiny SegFormer, the CPU schedule) reading the LUAD-HistoSeg layout, as
``lpd_luad_synth_cpu.py`` does for stage 1.

    lpd-bench pseudo-masks RUN_DIR            # RUN_DIR: a *_luad_synth_cpu.py stage-1 run
    python tools/train.py configs/stage2_luad_synth_cpu.py --work-dir WORK \
        --cfg-options pseudo_mask_dir=RUN_DIR/pseudo_masks/train
    python tools/test.py configs/stage2_luad_synth_cpu.py WORK/iter_600.pth --work-dir WORK

The default synthetic set in the LUAD-HistoSeg layout (``data_root`` None: generated on first
use; the BCSS-WSSS stand-in's pixels relabelled, so the BCSS-WSSS normalisation stays). The
pseudo-masks pair with its train images (``layout``), val/test are ``LUADHistoSegDataset``, and
the MiT starts from the backbone pretrained on its train split, the file the LUAD-layout stage-1
CPU configs start from. Synthetic numbers are never LUAD-HistoSeg numbers.
"""
_base_ = ['./stage2_synth_cpu.py', './_base_/datasets/luad_histoseg_switch.py']

dataset_type = {{_base_.luad_dataset_type}}
train_dataloader = dict(dataset=dict(layout={{_base_.luad_layout}}))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = dict(dataset=dict(type=dataset_type))
model = dict(backbone=dict(init_cfg=dict(layout={{_base_.luad_layout}})))

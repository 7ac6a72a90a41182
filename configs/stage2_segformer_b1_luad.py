"""Second stage, paper preset on LUAD-HistoSeg: ``stage2_segformer_b1_bcss.py`` (SegFormer
MiT-B1, mmseg's SegFormer recipe over 18,744 iterations at batch 10) reading LUAD-HistoSeg, as
``lpd_luad.py`` does for stage 1.

    python -m lpd_bench.stage2.pseudo_masks configs/lpd_luad.py STAGE1.pth --out PSEUDO \
        --cfg-options data_root=/data/LUAD-HistoSeg
    python tools/train.py configs/stage2_segformer_b1_luad.py --cfg-options \
        data_root=/data/LUAD-HistoSeg pseudo_mask_dir=PSEUDO backbone_checkpoint=mit_b1.pth
    python tools/test.py configs/stage2_segformer_b1_luad.py \
        work_dirs/stage2_segformer_b1_luad/iter_18744.pth \
        --cfg-options data_root=/data/LUAD-HistoSeg

The pseudo-masks pair with the train images in the LUAD-HistoSeg layout (``layout``); val/test
are ``LUADHistoSegDataset``. Data root default: data/LUAD-HistoSeg. Normalisation:
``luad_normalisation`` of ``_base_/datasets/luad_histoseg_switch.py`` (BCSS-WSSS's statistics
until you set there what ``lpd-bench data stats PATH`` prints for your copy).
"""
_base_ = ['./stage2_segformer_b1_bcss.py', './_base_/datasets/luad_histoseg_switch.py']

dataset_type = {{_base_.luad_dataset_type}}
data_root = {{_base_.luad_data_root}}
data_preprocessor = {{_base_.luad_normalisation}}
train_dataloader = dict(dataset=dict(data_root=data_root, layout={{_base_.luad_layout}}))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
model = dict(data_preprocessor=data_preprocessor)

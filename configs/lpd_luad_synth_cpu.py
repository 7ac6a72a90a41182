"""LPD CPU preset on LUAD-HistoSeg-layout synthetic data: ``lpd_synth_cpu.py`` reading
``LUADHistoSegDataset``.

    python tools/train.py configs/lpd_luad_synth_cpu.py

The default synthetic set in the LUAD-HistoSeg layout (``data_root`` None: generated on first
use, cached as ``synthetic-luad-v3-...``; the BCSS-WSSS stand-in's pixels relabelled, so the
BCSS-WSSS normalisation stays). The preset's pretrained weights are pretrained on its train
split (``layout``: the set ``data_root`` None stands for). Synthetic numbers are never
LUAD-HistoSeg numbers.
"""
_base_ = ['./lpd_synth_cpu.py', './_base_/datasets/luad_histoseg_switch.py']

dataset_type = {{_base_.luad_dataset_type}}
train_dataloader = dict(dataset=dict(type=dataset_type))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = dict(dataset=dict(type=dataset_type))
model = dict(
    backbone=dict(init_cfg=dict(layout={{_base_.luad_layout}})),
    decode_head=dict(refiner_loss=dict(encoder=dict(backbone=dict(layout={{_base_.luad_layout}})))))

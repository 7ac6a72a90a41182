"""k-means bank + LPD head (PBIP-style, 2-stage), CPU preset on LUAD-HistoSeg-layout synthetic
data: ``pbip_synth_cpu.py`` reading ``LUADHistoSegDataset``, with its own bank.

    python tools/build_prototype_bank.py configs/pbip_luad_synth_cpu.py

The default synthetic set in the LUAD-HistoSeg layout (``data_root`` None: generated on first
use, cached as ``synthetic-luad-v3-...``; the BCSS-WSSS stand-in's pixels relabelled, so the
BCSS-WSSS normalisation stays). The preset's pretrained weights are pretrained on its train
split (``layout``: the set ``data_root`` None stands for). Synthetic numbers are never
LUAD-HistoSeg numbers.
"""
_base_ = ['./pbip_synth_cpu.py', './_base_/datasets/luad_histoseg_switch.py']

dataset_type = {{_base_.luad_dataset_type}}
train_dataloader = dict(dataset=dict(type=dataset_type))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = dict(dataset=dict(type=dataset_type))
bank_path = 'work_dirs/pbip_luad_synth_cpu/prototype_bank.pth'
model = dict(
    backbone=dict(init_cfg=dict(layout={{_base_.luad_layout}})),
    decode_head=dict(
        prototypes=dict(bank_path=bank_path),
        refiner_loss=dict(encoder=dict(backbone=dict(layout={{_base_.luad_layout}})))))

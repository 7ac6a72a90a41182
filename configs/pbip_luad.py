"""k-means bank + LPD head (PBIP-style, 2-stage) on LUAD-HistoSeg, paper setting:
``pbip_bcss.py`` reading LUAD-HistoSeg, as ``lpd_luad.py`` does, with its own bank.

    python tools/build_prototype_bank.py configs/pbip_luad.py        # stage A
    python tools/train.py configs/pbip_luad.py [--cfg-options bank_path=BANK.pth]   # stage B
"""
_base_ = ['./pbip_bcss.py', './_base_/datasets/luad_histoseg_switch.py']

dataset_type = {{_base_.luad_dataset_type}}
data_root = {{_base_.luad_data_root}}
data_preprocessor = {{_base_.luad_normalisation}}
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
bank_path = 'work_dirs/pbip_luad/prototype_bank.pth'
model = dict(data_preprocessor=data_preprocessor,
             decode_head=dict(prototypes=dict(bank_path=bank_path)))

"""CAM baseline on LUAD-HistoSeg, paper setting: ``cam_bcss.py`` (one class vector per class and
stage, classification loss only; everything else LPD's) reading LUAD-HistoSeg, as
``lpd_luad.py`` does (data root data/LUAD-HistoSeg, ``--cfg-options data_root=PATH``).
"""
_base_ = ['./cam_bcss.py', './_base_/datasets/luad_histoseg_switch.py']

dataset_type = {{_base_.luad_dataset_type}}
data_root = {{_base_.luad_data_root}}
data_preprocessor = {{_base_.luad_normalisation}}
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
model = dict(data_preprocessor=data_preprocessor)

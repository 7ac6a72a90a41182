"""LPD on LUAD-HistoSeg, paper setting: ``lpd_bcss.py`` (MiT-B1, k = 10, 18,744 iterations at
batch 10) reading LUAD-HistoSeg (``LUADHistoSegDataset``: train names
``<patient>-<x>-<y>-[a b c d].png``, classes TE, NEC, LYM, TAS).

    python tools/train.py configs/lpd_luad.py --cfg-options data_root=PATH
    python tools/test.py configs/lpd_luad.py work_dirs/lpd_luad/iter_18744.pth [--cfg-options ...]

Data root default: data/LUAD-HistoSeg. Normalisation: ``luad_normalisation`` of
``_base_/datasets/luad_histoseg_switch.py``, BCSS-WSSS's statistics until you set there what
``lpd-bench data stats PATH`` prints for your copy (docs/datasets.md, section 4).
"""
_base_ = ['./lpd_bcss.py', './_base_/datasets/luad_histoseg_switch.py']

dataset_type = {{_base_.luad_dataset_type}}
data_root = {{_base_.luad_data_root}}
data_preprocessor = {{_base_.luad_normalisation}}
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
model = dict(data_preprocessor=data_preprocessor)

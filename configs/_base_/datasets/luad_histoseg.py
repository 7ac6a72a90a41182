"""LUAD-HistoSeg (real data): image-level labels for train, pixel masks for val and test.

``data_root`` is the release folder: ``train/<patient>-<x>-<y>-[a b c d].png`` (labels TE, NEC,
LYM, TAS in the names), ``val/`` (or ``valid/``) and ``test/`` with ``img/`` and ``mask/`` (P-mode
masks 0..4; docs/datasets.md, section 4). Pipelines, loaders and the evaluator are
BCSS-WSSS's (``bcss_wsss.py``); point every dataloader at your copy with ``--cfg-options
data_root=PATH`` (tools/train.py, tools/test.py). To train a method on it, use this file in
place of ``bcss_wsss.py`` in the method's ``_base_`` list (all models have 4 tissue classes), or
build on the method's BCSS-WSSS config as ``configs/*_luad.py`` do.

Normalisation: the values come from ``luad_histoseg_switch.py`` and are, until you set them
there, the BCSS-WSSS statistics: a placeholder only. For real LUAD-HistoSeg run
``lpd-bench data stats PATH`` on your copy and put the 0..255 ``mean``/``std`` it prints (B, G, R
order, as the images are read) into ``luad_normalisation`` of ``luad_histoseg_switch.py``: this
file and every ``configs/*_luad.py`` read them from there. The statistics of a synthetic
LUAD-layout set (``lpd-bench data synth --layout luad``) are NOT right for real data: its pixels
are the synthetic BCSS-WSSS stand-in's.
"""
_base_ = ['./bcss_wsss.py', './luad_histoseg_switch.py']

dataset_type = {{_base_.luad_dataset_type}}
data_root = {{_base_.luad_data_root}}
data_preprocessor = {{_base_.luad_normalisation}}

train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))

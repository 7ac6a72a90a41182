"""LUAD-HistoSeg (real data): image-level labels for train, pixel masks for val and test.

``data_root`` is the release folder: ``train/<patient>-<x>-<y>-[a b c d].png`` (labels TE, NEC,
LYM, TAS in the names), ``val/`` (or ``valid/``) and ``test/`` with ``img/`` and ``mask/`` (P-mode
masks 0..4; docs/datasets.md, section 4). Pipelines, loaders and the evaluator are
BCSS-WSSS's (``bcss_wsss.py``); point every dataloader at your copy with ``--cfg-options
data_root=PATH`` (tools/train.py, tools/test.py). To train a method on it, use this file in
place of ``bcss_wsss.py`` in the method's ``_base_`` list (all models have 4 tissue classes).

Normalisation: the mean/std below are the BCSS-WSSS statistics, a placeholder only. For real
LUAD-HistoSeg run ``lpd-bench data stats PATH`` on your copy and set ``data_preprocessor``'s
``mean``/``std`` to the 0..255 values it prints (B, G, R order, as the images are read). The
statistics of a synthetic LUAD-layout set (``lpd-bench data synth --layout luad``) are NOT right
for real data: its pixels are the synthetic BCSS-WSSS stand-in's.
"""
_base_ = ['./bcss_wsss.py']

dataset_type = 'LUADHistoSegDataset'
data_root = 'data/LUAD-HistoSeg'

# PLACEHOLDER: lpd_bench.data.bcss_meta.MEAN_BGR_255 / STD_BGR_255 (BCSS-WSSS). Replace with the
# output of `lpd-bench data stats PATH` on your LUAD-HistoSeg copy (BGR; bgr_to_rgb stays False).
data_preprocessor = dict(
    mean=[170.318315, 121.867999, 180.089425],
    std=[44.28302, 57.539671, 50.541145],
    bgr_to_rgb=False)

train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))

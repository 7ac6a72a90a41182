"""LUAD-HistoSeg's values for a BCSS-WSSS config: the one place they are written.

A LUAD-HistoSeg config is a BCSS-WSSS one with this file as a second ``_base_`` (its names are
new, so it merges without clashing) and these values copied to where the dataset is read, e.g.
``configs/cam_luad.py``::

    _base_ = ['./cam_bcss.py', './_base_/datasets/luad_histoseg_switch.py']
    dataset_type = {{_base_.luad_dataset_type}}
    data_root = {{_base_.luad_data_root}}
    data_preprocessor = {{_base_.luad_normalisation}}
    train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
    ...                                                  # val_dataloader, test_dataloader
    model = dict(data_preprocessor=data_preprocessor)

``luad_histoseg.py`` (the dataset base file, in place of ``bcss_wsss.py``) and every
``configs/*_luad.py`` read them from here; the CPU-preset ``configs/*_luad_synth_cpu.py`` take
``luad_dataset_type`` and ``luad_layout`` only (the synthetic LUAD-layout set has the BCSS-WSSS
stand-in's pixels, so it keeps the BCSS-WSSS statistics). docs/datasets.md, section 4.
"""
luad_dataset_type = 'LUADHistoSegDataset'
luad_data_root = 'data/LUAD-HistoSeg'
# The layout key of the default synthetic set that data_root=None stands for (the CPU preset's
# pretrained backbone and refiner encoder: lpd_bench.models.backbone_pretraining,
# encoder_pretraining).
luad_layout = 'luad'

# PLACEHOLDER: lpd_bench.data.bcss_meta.MEAN_BGR_255 / STD_BGR_255 (BCSS-WSSS), not LUAD-HistoSeg
# statistics. Replace them with the lines `lpd-bench data stats PATH` prints for your
# LUAD-HistoSeg copy (0..255, B, G, R order as the images are read; bgr_to_rgb stays False):
luad_normalisation = dict(
    mean=[170.318315, 121.867999, 180.089425],
    std=[44.28302, 57.539671, 50.541145],
)

"""BCSS-WSSS (real data): image-level labels for train, pixel masks for val and test.

``data_root`` is the release folder (``train/``, ``val/`` or ``valid/``, ``test/``). To point
every dataloader at another folder use ``--cfg-options data_root=PATH`` with tools/train.py or
tools/test.py: they copy it into each dataloader (a plain override of this variable would not
reach the dataloaders, which MMEngine fills in when it parses this file).
"""
dataset_type = 'BCSSWSSSDataset'
data_root = 'data/BCSS-WSSS'

# lpd_bench.data.bcss_meta.MEAN_BGR_255 / STD_BGR_255 (images are read BGR and stay BGR);
# tests/test_configs.py checks that these literals match.
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[170.318315, 121.867999, 180.089425],
    std=[44.28302, 57.539671, 50.541145],
    bgr_to_rgb=False,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=1)  # no padding: a batch is stacked as is (all patches have one size)

# Augmentation of the public code: horizontal flip, vertical flip, random 90-degree rotation
# (albumentations RandomRotate90, p=0.5; when applied k*90 degrees, k uniform in 0..3).
# lpd_bench.data.transforms.TRAIN_AUGMENTATION: the same steps (tests/test_fidelity_training.py).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRotate90', prob=0.5),
    dict(type='PackWSSSInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackWSSSInputs'),
]

train_dataloader = dict(
    batch_size=10,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=10,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline))
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))

val_evaluator = dict(type='WSSSMetric')
test_evaluator = val_evaluator

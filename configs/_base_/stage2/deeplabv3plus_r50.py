"""DeepLabV3+ R50-D8: the second option for the second stage's network, an ordinary
MMSegmentation model (mmseg's ``deeplabv3plus_r50-d8`` settings: ``ResNetV1c`` depth 50, output
stride 8, ``DepthwiseSeparableASPPHead`` and an auxiliary ``FCNHead``, both with the settings
of ``encoder_decoder.py``: 5 output classes, the 4 tissues and background, mask value 4).

ImageNet weights: mmseg's own key, ``--cfg-options model.pretrained=PATH`` (the
``resnet50_v1c`` file of open-mmlab; nothing is downloaded); None: random. BN rather than
mmseg's SyncBN, which has no CPU implementation (in the backbone too).
"""
_base_ = ['./encoder_decoder.py']

model = dict(
    backbone=dict(
        type='ResNetV1c',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        contract_dilation=True),
    decode_head=dict(
        type='DepthwiseSeparableASPPHead',
        in_channels=2048,
        in_index=3,
        channels=512,
        dilations=(1, 12, 24, 36),
        c1_in_channels=256,
        c1_channels=48,
        dropout_ratio=0.1),
    auxiliary_head=dict(
        _base_.model.decode_head,
        type='FCNHead',
        in_channels=1024,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        loss_decode=dict(_base_.model.decode_head.loss_decode, loss_weight=0.4)))

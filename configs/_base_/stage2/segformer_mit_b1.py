"""SegFormer MiT-B1: the second stage's network in the paper preset, an ordinary MMSegmentation
model (``EncoderDecoder`` + ``MixVisionTransformer`` + ``SegformerHead``, mmseg's
``segformer_mit-b1`` settings) with 5 output classes: the 4 tissues and background (mask value 4).

Trained fully supervised on pseudo-masks (cross-entropy, 255 ignored), tested as any mmseg model:
one forward, argmax, no labels (the metric's gating ``none``): ``encoder_decoder.py``.
``backbone_checkpoint`` (the official SegFormer ImageNet ``mit_b1.pth``, as for stage 1;
``--cfg-options backbone_checkpoint=PATH``) initialises the MiT; None: random. The normalisation
(``model.data_preprocessor``) comes from the dataset config, as for stage 1. BN rather than
mmseg's SyncBN, which has no CPU implementation (several GPUs: ``--cfg-options
model.decode_head.norm_cfg.type=SyncBN``).
"""
_base_ = ['./encoder_decoder.py']

backbone_checkpoint = None

model = dict(
    backbone=dict(
        type='MixVisionTransformer',
        in_channels=3,
        embed_dims=64,
        num_stages=4,
        num_layers=[2, 2, 2, 2],
        num_heads=[1, 2, 5, 8],
        patch_sizes=[7, 3, 3, 3],
        strides=[4, 2, 2, 2],
        sr_ratios=[8, 4, 2, 1],
        out_indices=(0, 1, 2, 3),
        mlp_ratio=4,
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        init_cfg=None if backbone_checkpoint is None else dict(
            type='PretrainedMiT', checkpoint=backbone_checkpoint)),
    decode_head=dict(
        type='SegformerHead',
        in_channels=[64, 128, 320, 512],
        in_index=[0, 1, 2, 3],
        channels=256,
        dropout_ratio=0.1))

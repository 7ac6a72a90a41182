"""The second stage's network for the CPU preset: ``segformer_mit_b1.py`` shrunk as the stage-1
CPU model (``../models/lpd_mit_tiny_cpu.py``): the same narrow MiT (embed 16, one block per
stage, strides 4, 2, 2, 1: widths 16/32/80/128, no drop path) and a 64-channel SegformerHead.

The MiT is the stage-1 preset's, so it starts from the same backbone pretrained once on the train
split with image-level labels (``backbone_init='pretrained'``: ``SyntheticPretrainedBackbone``,
the same cached file every stage-1 method starts from, standing in for ImageNet weights) or from
random weights (``--cfg-options backbone_init=scratch``).
"""
_base_ = ['./segformer_mit_b1.py']

backbone_init = 'pretrained'

model = dict(
    backbone=dict(
        embed_dims=16, num_layers=[1, 1, 1, 1], strides=[4, 2, 2, 1], drop_path_rate=0.0,
        init_cfg=dict(_delete_=True, type='SyntheticPretrainedBackbone', data_root=None,
                      input_size=(112, 112))
        if backbone_init == 'pretrained' else None),
    decode_head=dict(in_channels=[16, 32, 80, 128], channels=64))

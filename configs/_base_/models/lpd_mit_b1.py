"""LPD, paper setting (DESIGN.md section 3).

MiT-B1 with strides (4, 2, 2, 1); PrototypeHead with k = 10 learnable prototypes per class
(D = 512), stage loss weights (0, 0.1, 1, 1); after a 3,000-iteration loss warm-up the mask refiner
(frozen ImageNet Swin-T, 768 pooled -> fixed random 512) and the corrected diversity loss
(lambda 0.5) switch on. Inference: the paper protocol (flip x 3 intensities, fused stages 2..4,
oracle label gating; prediction gating is always computed as well).

The normalisation (``model.data_preprocessor``) comes from the dataset config; top-level configs
set ``model = dict(data_preprocessor={{_base_.data_preprocessor}})``.
Weights (None: random init), set in a config or with ``--cfg-options NAME=PATH`` (the tools copy
these variables to where they are used):
- ``backbone_checkpoint``: official SegFormer ImageNet ``mit_b1.pth`` (loaded by PretrainedMiT);
- ``encoder_checkpoint``: mmseg-format ImageNet Swin-T state dict for the refiner's encoder.
"""
backbone_checkpoint = None
encoder_checkpoint = None

model = dict(
    type='WeaklySupervisedSegmentor',
    backbone=dict(
        type='MixVisionTransformer',
        in_channels=3,
        embed_dims=64,
        num_stages=4,
        num_layers=[2, 2, 2, 2],
        num_heads=[1, 2, 5, 8],
        patch_sizes=[7, 3, 3, 3],
        strides=[4, 2, 2, 1],
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
        type='PrototypeHead',
        in_channels=[64, 128, 320, 512],
        num_classes=4,
        prototypes=dict(type='LearnablePrototypes', num_per_class=10, dim=512),
        proj_hidden=256,
        init_scale=1 / 0.07,
        stage_loss_weights=[0.0, 0.1, 1.0, 1.0],
        loss_warmup_iters=3000,
        diversity_loss=dict(
            type='PrototypeDiversityLoss', variant='corrected', temperature=0.1, bg_score=0.2,
            loss_weight=0.5),
        refiner_loss=dict(
            type='MaskRefinerLoss',
            loss_weight=0.1,
            temperature=0.07,
            activation_weight=0.0005,
            encoder=dict(
                type='FrozenImageEncoder',
                backbone=dict(
                    type='SwinTransformer', pretrain_img_size=224, embed_dims=96, patch_size=4,
                    window_size=7, mlp_ratio=4, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                    strides=(4, 2, 2, 2), out_indices=(3, ), qkv_bias=True, drop_rate=0.0,
                    attn_drop_rate=0.0, drop_path_rate=0.0, patch_norm=True),
                checkpoint=encoder_checkpoint,
                feature_dim=768,
                out_dim=512),
            # On CPU, embed the cut-outs 16 at a time with activation checkpointing: batch 10 then
            # peaks at ~3.4 GiB instead of > 15 GiB, for ~25% more refiner time. Not on CUDA: on an
            # H100 at batch 10 they made the step 7x slower (1.6 s vs 0.23 s; peak 4.7 vs 14 GiB,
            # reports/perf_cuda_h100/). On a GPU with less than ~16 GiB add 'cuda' to the list.
            # Only for batches of more than 64 cut-outs: batch 2 (~40) runs plain (peak ~3 GiB).
            chunk_size=16,
            checkpoint_encoder=True,
            memory_saving_devices=('cpu', ),
            memory_saving_above=64,
            # Frozen Swin-T forward under bf16 autocast, embeddings back to fp32 before the losses:
            # ~2.6x faster on a CPU with AVX512-BF16/AMX (a CPU without them is slower: set None);
            # on CUDA AMP already autocasts (fp16) and bf16 here is fine too.
            encoder_autocast='bfloat16')),
    test_cfg=dict(
        flip=True,
        intensities=(0.9, 1.0, 1.1),
        fusion_weights=(0.0, 0.3, 0.3, 0.4),
        bg_alpha=10,
        gating='oracle',
        gating_threshold=0.5,
        crf=False))

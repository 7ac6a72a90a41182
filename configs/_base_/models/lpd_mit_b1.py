"""LPD, paper setting (docs/methods.md, "LPD").

MiT-B1 with strides (4, 2, 2, 1); PrototypeHead with k = 10 learnable prototypes per class
(D = 512), stage loss weights (0, 0.1, 1, 1); after a 3,000-iteration loss warm-up the mask refiner
(frozen ImageNet Swin-T, 768 pooled -> fixed random 512) and the corrected diversity loss
(lambda 0.5) switch on. Inference: the paper protocol (flip x 3 intensities, fused stages 2..4,
oracle label gating, DenseCRF; prediction gating and the no-CRF predictions are always computed
as well).

The normalisation (``model.data_preprocessor``) comes from the dataset config; top-level configs
set ``model = dict(data_preprocessor={{_base_.data_preprocessor}})``.
Weights (None: random init), set in a config or with ``--cfg-options NAME=PATH`` (the tools copy
these variables to where they are used):
- ``backbone_checkpoint``: official SegFormer ImageNet ``mit_b1.pth`` (loaded by PretrainedMiT);
- ``encoder_checkpoint``: the refiner encoder's ImageNet Swin-T: the model hub's
  ``microsoft/swin-tiny-patch4-window7-224`` file (model.safetensors / pytorch_model.bin,
  converted on load) or an mmseg-format state dict (tools/convert_weights.py makes one).
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
        # The diversity loss compares the stage-4 features with the RAW (unprojected) prototypes,
        # as the public code does (P is 512-d and stage 4 is 512 wide); 'projected': W_4(P).
        diversity_prototypes='raw',
        # variant 'corrected' (one softmax, right class index) or 'public' (the public code's
        # form, pixel selection and reduction). The temperature 0.1 is OURS: the public code has
        # none (it applies softmax twice); the public variant ignores it.
        diversity_loss=dict(
            type='PrototypeDiversityLoss', variant='corrected', temperature=0.1, bg_score=0.2,
            loss_weight=0.5),
        refiner_loss=dict(
            type='MaskRefinerLoss',
            loss_weight=0.1,
            temperature=0.07,
            activation_weight=0.0005,
            # The public code's cut-outs: raw upsampled stage-4 map (align_corners=True) times the
            # image, hard mask map >= 0.5 * max over the image's upsampled maps
            # ('soft_normalized': our earlier ReLU(map)/max weighting, '>' on the stage-4 max).
            cutout_form='public',
            # Strict score > class mean; k = 1 selects nothing ('all_if_single': all when k = 1).
            selection='public',
            # All-zero cut-outs (empty / full hard mask) are embedded like the others, as the
            # public code does ('skip': left out of their loss).
            blank_cutouts='embed',
            encoder=dict(
                type='FrozenImageEncoder',
                backbone=dict(
                    # The original Swin's rule (no shift in the 7 x 7 single-window stage 4), as
                    # the hub model computes; type='SwinTransformer' is mmseg's (always shifts).
                    type='OriginalSwinTransformer', pretrain_img_size=224, embed_dims=96,
                    patch_size=4, window_size=7, mlp_ratio=4, depths=(2, 2, 6, 2),
                    num_heads=(3, 6, 12, 24),
                    strides=(4, 2, 2, 2), out_indices=(3, ), qkv_bias=True, drop_rate=0.0,
                    attn_drop_rate=0.0, drop_path_rate=0.0, patch_norm=True),
                checkpoint=encoder_checkpoint,
                feature_dim=768,
                out_dim=512),
            # On CPU, embed the cut-outs 16 at a time with activation checkpointing: a much lower
            # peak memory at batch 10 for some more refiner time. Not on CUDA, where they made the
            # step several times slower; on a GPU too small for the step's peak without them, add
            # 'cuda' to the list. Only for batches of more than 64 cut-outs (batch 2 runs plain).
            # Measured speed and memory of each lever: reports/perf.md (CPU, preset paper, cases
            # lpd_step_after*) and reports/perf_cuda_h100/perf.md (H100).
            chunk_size=16,
            checkpoint_encoder=True,
            memory_saving_devices=('cpu', ),
            memory_saving_above=64,
            # Frozen Swin-T forward under bf16 autocast, embeddings back to fp32 before the losses:
            # faster on a CPU with AVX512-BF16/AMX (a CPU without them is slower: set None; see
            # reports/perf.md, lpd_step_after_plain vs lpd_step_after_bf16); on CUDA AMP already
            # autocasts (fp16) and bf16 here is fine too.
            encoder_autocast='bfloat16')),
    # The public code's inference (docs/protocol.md, section 1); the alternatives are named options
    # of lpd_bench.models.inference.InferenceProtocol (docs/protocol.md, section 7).
    test_cfg=dict(
        flip=True,
        intensities=(0.9, 1.0, 1.1),
        intensity_space='normalized',  # ttach Multiply on the normalised tensor ('raw': pixels)
        fusion_weights=(0.0, 0.3, 0.3, 0.4),
        map_merge='per_pixel',  # softmax over a class's k maps at each pixel ('per_image')
        align_corners=True,  # every bilinear upsampling of maps
        bg_alpha=10,
        gating='oracle',  # the configured one; 'predicted' is always computed as well
        gating_score='mean',  # predicted gating on the mean-merged stage-4 score ('softmax')
        gating_threshold=0.5,  # choose on val: tools/choose_gating_threshold.py
        crf=True,  # predictions with and without DenseCRF ('<gating>_crf' variants)
        crf_params='public',  # Gaussian 15/30, bilateral 10/20/50, 5 iterations ('affinitynet')
        crf_workers=None))  # CRF processes: None = the available cores, 0 = in process

"""LPD for the CPU preset: the paper model shrunk to train from scratch in about a minute.

Changes: a narrow MiT (embed 16, one block per stage, same strides and heads: widths
16/32/80/128), no drop path, and a cheap random frozen encoder in the refiner: a two-stage
``PatchMLPEncoder`` (4 x 4 patches -> 64, 2 x 2 merge -> 128, projected to 512) on 16 x 16
cut-outs, embedded in one fp32 call without checkpointing. Why: the CPU preset has no pretrained
weights, so any frozen encoder here is a random-feature extractor, and its input gradient is
paid for two cut-outs per selected prototype per image at every step. The narrow MiT used
before (same shape as the backbone) on 32 x 32 cut-outs cost about as much as the whole CAM
step; this encoder is a small fraction of that, and 16 px cut-outs (still above the 7 x 7
resolution of the stage-4 maps that shape them) cut the rest of the refiner's pixel work. The
current LPD-step / CAM-step ratio is measured in reports/perf.md (preset cpu). The paper's
chunking/checkpointing saves no memory worth having here; bf16 autocast stays off (it helps
only on CPUs with AVX512-BF16/AMX). The loss warm-up is at a third of ``schedules/cpu_short.py``.
Kept: k, D, stage weights, the losses and their weights, the cut-out form and selection, the
inference protocol, so that the ablation knobs mean the same as in the paper setting. The one
loss input that must differ: stage 4 is 128 wide, narrower than the 512-d prototypes, so the
diversity loss compares it with the projected stage-4 prototypes (``diversity_prototypes=
'projected'``) instead of the raw ones.
"""
_base_ = ['./lpd_mit_b1.py']

# The refiner's frozen encoder: 'random' (PatchMLPEncoder with random weights; the committed
# reports) or 'pretrained' (SyntheticPretrainedPatchMLP: the same backbone pretrained once on the
# train split of data_root, None = the default synthetic set, then cached; see
# lpd_bench.models.encoder_pretraining and reports/cpu_encoder.md). A run can switch it with
# --cfg-options cpu_encoder=pretrained.
cpu_encoder = 'random'
# The MiT's initialisation, in place of the paper's ImageNet weights: 'pretrained'
# (SyntheticPretrainedBackbone: a generic multi-label classifier trained once on the train split
# of data_root with image-level labels, then cached; the same weights for every method and seed;
# see lpd_bench.models.backbone_pretraining) or 'scratch' (random). A run can switch it with
# --cfg-options backbone_init=scratch.
backbone_init = 'pretrained'

model = dict(
    backbone=dict(
        embed_dims=16, num_layers=[1, 1, 1, 1], drop_path_rate=0.0,
        init_cfg=dict(_delete_=True, type='SyntheticPretrainedBackbone', data_root=None,
                      input_size=(112, 112))
        if backbone_init == 'pretrained' else None),
    decode_head=dict(
        in_channels=[16, 32, 80, 128],
        loss_warmup_iters=100,
        # Stage 4 is 128 wide here and P 512: the diversity loss uses the projected W_4(P).
        diversity_prototypes='projected',
        refiner_loss=dict(
            # Cut-outs at 16 px: images resized by lpd_bench.models.encoder_resize (antialiased),
            # the stage-4 maps upsampled to 16 px, the hard-mask maximum taken over those maps.
            cutout_size=16,
            chunk_size=None,
            checkpoint_encoder=False,
            encoder_autocast=None,
            encoder=dict(
                backbone=dict(
                    _delete_=True,
                    type=dict(random='PatchMLPEncoder',
                              pretrained='SyntheticPretrainedPatchMLP')[cpu_encoder],
                    in_channels=3, patch_size=4, embed_dims=(64, 128),
                    **(dict(data_root=None, cutout_size=16) if cpu_encoder == 'pretrained'
                       else {})),
                feature_dim=128))))

"""LPD for the CPU preset: the paper model shrunk to fine-tune on 2 CPU cores in minutes.

Changes:
- a narrow MiT (embed 16, one block per stage, same strides and heads: widths 16/32/80/128), no
  drop path, initialised from a backbone pretrained once on the train split with image-level
  labels (``backbone_init``; it stands in for the paper's ImageNet weights, the same file for
  every method and seed);
- the refiner's frozen encoder: a two-stage ``PatchMLPEncoder`` (4 x 4 patches -> 64, 2 x 2 merge
  -> 128, projected to 512) on 16 x 16 cut-outs, pretrained once on the train split's
  single-label images (``cpu_encoder``; the paper's is an ImageNet Swin-T), embedded in one fp32
  call without checkpointing. Its input gradient is paid for two cut-outs per selected prototype
  per image at every step, so it is small; 16 px cut-outs are still above the 7 x 7 resolution
  of the stage-4 maps that shape them. The LPD-step / CAM-step ratio is measured in
  reports/perf.md (preset cpu). The paper's chunking/checkpointing saves no memory worth having
  here; bf16 autocast stays off (it helps only on CPUs with AVX512-BF16/AMX);
- the loss warm-up at a third of ``schedules/cpu_short.py``; no DenseCRF at test time.
Kept: k, D, stage weights, the losses and their weights, the cut-out form and selection, the
inference protocol (TTA, gatings), so that the ablation knobs mean the same as in the paper
setting. The one loss input that must differ: stage 4 is 128 wide, narrower than the 512-d
prototypes, so the diversity loss compares it with the projected stage-4 prototypes
(``diversity_prototypes='projected'``) instead of the raw ones.
"""
_base_ = ['./lpd_mit_b1.py']

# The refiner's frozen encoder: 'pretrained' (SyntheticPretrainedPatchMLP: a PatchMLPEncoder
# pretrained once on the train split of data_root, None = the default synthetic set, then cached;
# see lpd_bench.models.encoder_pretraining and reports/cpu_encoder.md) or 'random' (the same
# encoder with random weights). A run can switch it with --cfg-options cpu_encoder=random.
cpu_encoder = 'pretrained'
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
        loss_warmup_iters=200,  # a third of schedules/cpu_short.py
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
                feature_dim=128))),
    # No DenseCRF on the CPU preset, for its cost on 512 test patches (reports/calibration_v3.md,
    # part 2); the paper configs keep it (model.test_cfg.crf=True to switch it on).
    test_cfg=dict(crf=False))

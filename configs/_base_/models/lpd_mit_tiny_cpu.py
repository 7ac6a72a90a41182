"""LPD for the CPU preset: the paper model shrunk to train from scratch in about a minute.

Changes: a narrow MiT (embed 16, one block per stage, same strides and heads: widths
16/32/80/128), no drop path, a tiny random frozen MiT in the refiner (widths up to 128, projected
to 512) with 32 x 32 cut-outs embedded in one fp32 call without checkpointing (the paper's
chunking/checkpointing saves no memory worth having here and cost 2.6x the step; bf16 autocast
stays off: with this random encoder its losses differ by 10-30% from fp32 and the map gradients
are unrelated, sometimes 1e8 times larger), and the loss warm-up at a third of
``schedules/cpu_short.py``.
Kept: k, D, stage weights, the losses and their weights, the inference protocol, so that the
ablation knobs mean the same as in the paper setting.
"""
_base_ = ['./lpd_mit_b1.py']

model = dict(
    backbone=dict(embed_dims=16, num_layers=[1, 1, 1, 1], drop_path_rate=0.0),
    decode_head=dict(
        in_channels=[16, 32, 80, 128],
        loss_warmup_iters=100,
        refiner_loss=dict(
            cutout_size=32,
            chunk_size=None,
            checkpoint_encoder=False,
            encoder_autocast=None,
            encoder=dict(
                backbone=dict(
                    _delete_=True, type='MixVisionTransformer', in_channels=3, embed_dims=16,
                    num_stages=4, num_layers=[1, 1, 1, 1], num_heads=[1, 2, 5, 8],
                    patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2], sr_ratios=[8, 4, 2, 1],
                    out_indices=(3, ), mlp_ratio=4, drop_rate=0.0, drop_path_rate=0.0),
                feature_dim=128))))

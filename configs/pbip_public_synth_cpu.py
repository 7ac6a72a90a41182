"""PBIP as its public stage-1 code does it, CPU preset on the default synthetic set (stage B).

Stage A, the same k-means bank as the PBIP-style baseline (``baselines/pbip``)::

    python tools/build_prototype_bank.py configs/pbip_public_synth_cpu.py

Stage B: ``pbip_synth_cpu.py`` (the bank, k=3, frozen in place of learnable prototypes, no
diversity loss) with the public code's differences (baselines/pbip_public/README.md): projected
bank rows not normalised in the similarity, the refiner on from iteration 0 with min-max scaled
cut-out images and PBIP's batch InfoNCE, and inference by argmax over the four tissue maps (no
background channel, no CRF)::

    python tools/train.py configs/pbip_public_synth_cpu.py [--cfg-options bank_path=BANK.pth]
"""
_base_ = ['./pbip_synth_cpu.py']
default_scope = 'mmseg'
custom_imports = dict(imports=['lpd_bench', 'baselines'], allow_failed_imports=False)

bank_path = 'work_dirs/pbip_public_synth_cpu/prototype_bank.pth'
model = dict(
    type='PBIPPublicSegmentor',
    decode_head=dict(
        type='PBIPPublicHead',
        prototypes=dict(bank_path=bank_path),
        loss_warmup_iters=0,  # the refiner is on from the first iteration
        refiner_loss=dict(type='PBIPPublicRefinerLoss')),
    test_cfg=dict(crf=False))

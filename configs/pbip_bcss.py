"""k-means bank + LPD head (PBIP-style, 2-stage), paper setting on BCSS-WSSS (stage B).

Stage A (same config, writes ``bank_path`` and ``<bank_path>.cost.json``)::

    python tools/build_prototype_bank.py configs/pbip_bcss.py

Stage B: LPD's paper config with the bank (k=3 per class, the public PBIP code's choice) frozen
in place of the learnable prototypes (same projection MLPs, classification loss and mask
refiner) and no diversity loss: LPD's head and losses on a frozen k-means bank
(docs/methods.md, "PBIP-style"; PBIP as its public code trains it: pbip_public_bcss.py)::

    python tools/train.py configs/pbip_bcss.py [--cfg-options bank_path=BANK.pth]
"""
_base_ = ['./lpd_bcss.py']

bank_path = 'work_dirs/pbip_bcss/prototype_bank.pth'
model = dict(
    decode_head=dict(
        prototypes=dict(
            _delete_=True, type='ClusteredPrototypes', bank_path=bank_path, num_per_class=3,
            dim=512),
        diversity_loss=None))

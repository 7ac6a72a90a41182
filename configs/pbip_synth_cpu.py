"""k-means bank + LPD head (PBIP-style, 2-stage), CPU preset on the default synthetic set (stage B).

Stage A: ``python tools/build_prototype_bank.py configs/pbip_synth_cpu.py``; stage B:
``lpd_synth_cpu.py`` with the bank (k=3) frozen in place of the learnable prototypes and no
diversity loss.
"""
_base_ = ['./lpd_synth_cpu.py']

bank_path = 'work_dirs/pbip_synth_cpu/prototype_bank.pth'
model = dict(
    decode_head=dict(
        prototypes=dict(
            _delete_=True, type='ClusteredPrototypes', bank_path=bank_path, num_per_class=3,
            dim=512),
        diversity_loss=None))

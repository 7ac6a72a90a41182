"""LPD CPU preset on the default synthetic set (a tiny MiT from scratch, 300 iterations).

    python tools/train.py configs/lpd_synth_cpu.py
    python tools/test.py configs/lpd_synth_cpu.py work_dirs/lpd_synth_cpu/iter_300.pth

About 60 CPU-seconds for train + test with one thread (~50 s train incl. start-up and the final
validation, ~9 s test); test mIoU (oracle gating, paper protocol) 70.2 vs 46.7 for the same
network untrained. Synthetic numbers are never BCSS-WSSS numbers.
"""
_base_ = [
    './_base_/models/lpd_mit_tiny_cpu.py',
    './_base_/datasets/synthetic_cpu.py',
    './_base_/schedules/cpu_short.py',
]
default_scope = 'mmseg'
custom_imports = dict(imports=['lpd_bench', 'baselines'], allow_failed_imports=False)

model = dict(data_preprocessor={{_base_.data_preprocessor}})

"""LPD CPU preset on the default synthetic set (a tiny MiT fine-tuned from the backbone pretrained
on the train split, 600 iterations).

    python tools/train.py configs/lpd_synth_cpu.py
    python tools/test.py configs/lpd_synth_cpu.py work_dirs/lpd_synth_cpu/iter_600.pth

Its measured test mIoU is in reports/main_results.md and its train and test time in
reports/cost.md (both written by ``lpd-bench report``). Synthetic numbers are never BCSS-WSSS
numbers.
"""
_base_ = [
    './_base_/models/lpd_mit_tiny_cpu.py',
    './_base_/datasets/synthetic_cpu.py',
    './_base_/schedules/cpu_short.py',
]
default_scope = 'mmseg'
custom_imports = dict(imports=['lpd_bench', 'baselines'], allow_failed_imports=False)

model = dict(data_preprocessor={{_base_.data_preprocessor}})

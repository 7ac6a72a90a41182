"""Second stage, CPU preset on the default synthetic set: a tiny SegFormer (the stage-1 preset's
MiT, started from the same train-split-pretrained backbone) trained on a stage-1 run's train
pseudo-masks for the CPU schedule (600 iterations, 112 px), tested with no labels.

    lpd-bench pseudo-masks work_dirs/bench/runs/lpd__seed0        # -> RUN_DIR/pseudo_masks/train
    python tools/train.py configs/stage2_synth_cpu.py --work-dir work_dirs/stage2_lpd \
        --cfg-options pseudo_mask_dir=work_dirs/bench/runs/lpd__seed0/pseudo_masks/train
    python tools/test.py configs/stage2_synth_cpu.py work_dirs/stage2_lpd/iter_600.pth \
        --work-dir work_dirs/stage2_lpd

Synthetic numbers are never BCSS-WSSS numbers.
"""
_base_ = [
    './_base_/stage2/segformer_mit_tiny_cpu.py',
    './_base_/stage2/pseudo_masks_synthetic_cpu.py',
    './_base_/schedules/cpu_short.py',
]
custom_imports = dict(imports=['lpd_bench', 'baselines'], allow_failed_imports=False)

model = dict(data_preprocessor={{_base_.data_preprocessor}})

"""The runner's stage-2 runs: for each main run of a method with a second stage, a run that waits
for it, writes its pseudo-masks, trains the second-stage network on them and tests it with no
labels (docs/protocol.md, section 11; :meth:`lpd_bench.runner.execute.Executor.execute_stage2`).

A stage-2 run is a :class:`lpd_bench.runner.plan.RunSpec` with ``stage=2`` and ``depends_on``
the stage-1 run id; its config is the data set's and preset's second-stage network
(:data:`STAGE2_CONFIGS`, the same for every method), its run id ``<method>__stage2__seed<S>``. Its
result (``result.json``, the run result contract) adds ``stage`` (2), ``source_run``,
``pseudo_masks`` (train and val folders, counts, class frequencies, the val masks' mIoU) and, in
``cost``, ``stage1_wall_s`` and ``both_stages_wall_s``.
"""
from pathlib import Path

from ..methods import MAIN_GROUP, config_key

#: The second-stage config of each (data set, preset); every method's pseudo-masks train the same
#: network (a bare preset key means BCSS-WSSS, as in ``MethodSpec.configs``).
STAGE2_CONFIGS = {
    'cpu': 'configs/stage2_synth_cpu.py',
    'paper': 'configs/stage2_segformer_b1_bcss.py',
    ('luad', 'cpu'): 'configs/stage2_luad_synth_cpu.py',
    ('luad', 'paper'): 'configs/stage2_segformer_b1_luad.py',
}
#: Run-id fragment of a stage-2 run.
STAGE2_TAG = 'stage2'
#: Sub-folder of a stage-2 run dir with the pseudo-masks, one folder per split.
PSEUDO_MASK_FOLDER = 'pseudo_masks'
#: The splits the pseudo-mask step writes: train (the second stage's labels) and val (scored
#: against the val masks: the pseudo-masks' quality, which train cannot give).
SPLITS = ('train', 'val')
#: The cfg-option that points the second stage's train dataset at the pseudo-masks.
MASK_DIR_OPTION = 'pseudo_mask_dir'
#: Keys of a stage-1 run's options that are not the stage-1 method's own: carried to its stage-2
#: run (the data, and knobs every config has).
SHARED_OPTION_PREFIXES = ('data_root', 'train_cfg.', 'param_scheduler', 'default_hooks.',
                          'train_dataloader.batch_size', 'val_dataloader.dataset.indices',
                          'test_dataloader.dataset.indices', 'schedule_fraction',
                          'backbone_init')


def stage2_config(dataset: str, preset: str):
    """The second-stage config of ``dataset`` and ``preset`` (None when there is none)."""
    configs = {config_key(key): path for key, path in STAGE2_CONFIGS.items()}
    return configs.get((dataset, preset))


def has_stage2(run) -> bool:
    """Whether stage-1 ``run`` (a RunSpec) gets a stage-2 run: its method's default run in the main
    table, of a method with a second stage, for a data set and preset with a stage-2 config."""
    return (run.stage == 1 and run.spec.has_stage2
            and any(m['name'] == MAIN_GROUP for m in run.memberships)
            and stage2_config(run.dataset, run.preset) is not None)


def stage2_options(run, extra_options=None) -> dict:
    """The stage-2 run's cfg-options: the extra options of the plan that every config has (e.g. a
    shorter schedule, the data root), none of the stage-1 method's own knobs."""
    options = dict(extra_options or {})
    if run.data_root is not None:
        options['data_root'] = run.data_root
    return {key: value for key, value in options.items()
            if key.startswith(SHARED_OPTION_PREFIXES)}


def stage2_run(run, extra_options=None):
    """The stage-2 RunSpec of stage-1 ``run`` (see :func:`has_stage2`)."""
    from ..runner.plan import RunSpec
    main = [m for m in run.memberships if m['name'] == MAIN_GROUP]
    return RunSpec(f'{run.method}__{STAGE2_TAG}__seed{run.seed}', run.method, run.seed,
                   run.preset, stage2_config(run.dataset, run.preset),
                   stage2_options(run, extra_options), run.data_root, memberships=main,
                   dataset=run.dataset, stage=2, depends_on=run.run_id)


def pseudo_mask_folders(run_dir) -> dict:
    """split -> the pseudo-mask folder of stage-2 run dir ``run_dir``."""
    return {split: Path(run_dir) / PSEUDO_MASK_FOLDER / split for split in SPLITS}


def pseudo_mask_summary(manifests: dict) -> dict:
    """The result's ``pseudo_masks`` from the manifests of the splits (lpd_bench.stage2
    .mask_folder): folder, images, class frequencies, ignored pixels; val's mIoU and scores."""
    summary = {}
    for split, (folder, manifest) in manifests.items():
        entry = {'dir': str(folder), 'images': manifest.get('num_images'),
                 'class_frequencies': manifest.get('class_frequencies'),
                 'ignored_pixels': (manifest.get('counts') or {}).get('ignored_pixels'),
                 'threshold': manifest.get('threshold'),
                 'checkpoint_sha256': (manifest.get('checkpoint') or {}).get('sha256')}
        score = manifest.get('score')
        if score:
            entry['mIoU'] = score.get('mIoU')
            entry['scores'] = score
        summary[split] = entry
    return summary

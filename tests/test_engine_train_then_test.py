"""tools/train.py --test-after: the validation after the last iteration is left out only when no
best-on-val checkpoint can come of it (MMEngine's toy runner, 4 iterations, validating every 2)."""
import copy

import pytest
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import Runner
from mmengine.testing.runner_test_case import ToyDataset, ToyMetric, ToyModel

from lpd_bench.engine.best_checkpoint import DelayedBestCheckpointHook
from lpd_bench.engine.train_then_test import SkipLastValidationHook


class RecordValidations(Hook):
    def __init__(self):
        self.iters = []

    def after_val_epoch(self, runner, metrics=None):
        self.iters.append(runner.iter)


def toy_config(work_dir, checkpoint):
    loader = dict(dataset=dict(type='ToyDataset'), batch_size=3, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    return dict(
        work_dir=str(work_dir), model=dict(type='ToyModel'), default_scope='mmengine',
        train_dataloader=dict(loader, sampler=dict(type='InfiniteSampler', shuffle=False)),
        val_dataloader=copy.deepcopy(loader), val_evaluator=[dict(type='ToyMetric')],
        val_cfg=dict(), optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=4, val_interval=2),
        log_processor=dict(by_epoch=False),
        default_hooks=dict(checkpoint=checkpoint), experiment_name=str(work_dir.name))


@pytest.fixture(autouse=True)
def toy_registries():
    from mmengine.registry import DATASETS, METRICS, MODELS
    MODELS.register_module(module=ToyModel, force=True)
    METRICS.register_module(module=ToyMetric, force=True)
    DATASETS.register_module(module=ToyDataset, force=True)


@pytest.mark.parametrize('checkpoint, validated', [
    # no best-on-val checkpoint at all: the last validation is left out
    (lambda: CheckpointHook(interval=4, by_epoch=False), [2]),
    # the best one only from iteration 10 on (the CPU preset's stage 1): left out
    (lambda: DelayedBestCheckpointHook(interval=4, by_epoch=False, save_best='acc',
                                       rule='greater', save_best_after=10), [2]),
    # the last validation can save the best checkpoint (paper preset, stage 2): kept
    (lambda: DelayedBestCheckpointHook(interval=4, by_epoch=False, save_best='acc',
                                       rule='greater', save_best_after=4), [2, 4]),
    (lambda: CheckpointHook(interval=4, by_epoch=False, save_best='acc', rule='greater'),
     [2, 4]),
])
def test_last_validation_left_out_only_when_no_best_checkpoint_can_come_of_it(
        tmp_path, checkpoint, validated):
    runner = Runner(**toy_config(tmp_path / f'w{len(validated)}', checkpoint()))
    record, notes = RecordValidations(), []
    runner.register_hook(record)
    runner.register_hook(SkipLastValidationHook(log=notes.append))
    runner.train()
    assert record.iters == validated
    assert bool(notes) == (validated == [2])
    if notes:
        assert 'Validation at iteration 4 left out' in notes[0]

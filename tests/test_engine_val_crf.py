"""NoCRFInValidationHook: validation during training runs without the CRF, the test loop with it."""
from types import SimpleNamespace

import torch
from mmengine.runner import Runner
from helpers import BATCH, ToyDataset, ToyMetric, ToyModel

from lpd_bench.engine.val_crf import NoCRFInValidationHook
from mmseg.registry import HOOKS


class CRFToyModel(ToyModel):
    """ToyModel with a CRF switch; records the setting each predict call saw."""

    def __init__(self, crf=True):
        super().__init__()
        self.crf = crf
        self.seen = []

    def set_crf(self, enabled):
        previous, self.crf = self.crf, bool(enabled)
        return previous

    def forward(self, inputs, labels=None, mode='tensor'):
        if mode == 'predict':
            self.seen.append(self.crf)
        return super().forward(inputs, labels, mode)


def test_registered_in_mmseg_scope():
    assert HOOKS.get('NoCRFInValidationHook') is NoCRFInValidationHook


def test_switches_off_for_validation_and_restores_the_previous_setting():
    hook = NoCRFInValidationHook()
    for crf in (True, False):
        model = CRFToyModel(crf=crf)
        runner = SimpleNamespace(model=model)
        hook.before_val_epoch(runner)
        assert model.crf is False
        hook.after_val_epoch(runner, metrics={})
        assert model.crf is crf


def test_unwraps_a_model_wrapper_and_ignores_models_without_a_switch():
    hook = NoCRFInValidationHook()
    model = CRFToyModel()
    runner = SimpleNamespace(model=torch.nn.DataParallel(model))  # an mmengine model wrapper
    hook.before_val_epoch(runner)
    assert model.crf is False
    hook.after_val_epoch(runner)
    assert model.crf is True
    plain = SimpleNamespace(model=ToyModel())
    hook.before_val_epoch(plain)
    hook.after_val_epoch(plain)


def test_runner_validates_without_crf_and_tests_with_it(tmp_path):
    loader = dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler', shuffle=False),
                  batch_size=BATCH, num_workers=0)
    model = CRFToyModel(crf=True)
    runner = Runner(
        model=model, work_dir=str(tmp_path), default_scope='mmseg', train_dataloader=loader,
        val_dataloader=loader, test_dataloader=loader, val_evaluator=[ToyMetric()],
        test_evaluator=ToyMetric(), val_cfg=dict(type='ValLoop'), test_cfg=dict(type='TestLoop'),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=2, val_interval=2),
        custom_hooks=[dict(type='NoCRFInValidationHook')], randomness=dict(seed=0))
    runner.train()
    batches = len(ToyDataset()) // BATCH
    assert model.seen == [False] * batches and model.crf is True
    runner.test()
    assert model.seen == [False] * batches + [True] * batches

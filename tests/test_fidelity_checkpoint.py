"""Issue 10 items 5 and 8: the best-on-val checkpoint starts after the loss warm-up plus one
validation interval (DelayedBestCheckpointHook on a toy MMEngine Runner), and the runner tests
both the last and the best checkpoint and records both (the fake tools of helpers.make_tools)."""
import io

import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.runner import Runner
from helpers import BATCH, ToyDataset, ToyModel

from lpd_bench.engine.best_checkpoint import DelayedBestCheckpointHook, loss_warmup_iters
from lpd_bench.runner.execute import Executor
from lpd_bench.runner.plan import build_plan
from lpd_bench.runner.progress import Progress
from lpd_bench.runner.results import (best_checkpoint, checkpoint_metrics, load_result,
                                     read_json, stage_record)
from mmseg.registry import HOOKS

#: Validation score of the toy model by iteration (val every 2 of 10 iterations): the highest
#: one (90, iteration 2) comes before the warm-up; the best after it is 30 at iteration 8.
SCORES = {2: 90.0, 4: 10.0, 6: 20.0, 8: 30.0, 10: 25.0}
VAL_ITERS = {}  # the iteration of the current validation, set by ValIterRecorder


@pytest.fixture(autouse=True)
def no_submorphology(monkeypatch):
    """These runs stand for data without sub-morphology maps (real BCSS-WSSS): LPD's
    specialisation post-stage does not apply (tests/test_analysis_specialisation.py covers it)."""
    from lpd_bench.analysis import specialisation
    monkeypatch.setattr(specialisation, 'has_submorphology', lambda *args, **kwargs: False)


class ValIterRecorder(Hook):
    """Tells ScriptedMetric at which iteration it validates."""

    priority = 'VERY_HIGH'

    def before_val(self, runner):
        VAL_ITERS['current'] = runner.iter


class ScriptedMetric(BaseMetric):
    """mIoU = SCORES[iteration of the validation]."""

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        return dict(mIoU=SCORES[VAL_ITERS['current']])


class ToyHead(nn.Module):
    def __init__(self, loss_warmup_iters):
        super().__init__()
        self.loss_warmup_iters = loss_warmup_iters


class ToySegmentor(ToyModel):
    """ToyModel with a ``decode_head`` that has a loss warm-up (as PrototypeHead)."""

    def __init__(self, loss_warmup_iters):
        super().__init__()
        self.decode_head = ToyHead(loss_warmup_iters)


def toy_runner(work_dir, model, max_iters=10, resume=False, **checkpoint):
    """Runner validating and checkpointing every 2 iterations with the delayed best hook."""
    loader = dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler', shuffle=False),
                  batch_size=BATCH, num_workers=0)
    hook = dict(type='DelayedBestCheckpointHook', interval=2, by_epoch=False, max_keep_ckpts=1,
                save_best='mIoU', rule='greater', **checkpoint)
    return Runner(
        model=model, work_dir=str(work_dir), experiment_name=f'{work_dir.name}_{max_iters}',
        default_scope='mmseg', train_dataloader=loader, val_dataloader=loader,
        val_evaluator=[ScriptedMetric()], val_cfg=dict(type='ValLoop'),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=2),
        default_hooks=dict(checkpoint=hook), custom_hooks=[ValIterRecorder()],
        randomness=dict(seed=0), resume=resume)


def checkpoint_files(work_dir):
    return sorted(p.name for p in work_dir.glob('*.pth'))


def test_registered_in_mmseg_scope():
    assert HOOKS.get('DelayedBestCheckpointHook') is DelayedBestCheckpointHook
    assert MMENGINE_HOOKS.get('DelayedBestCheckpointHook') is None


def test_best_starts_after_warmup_plus_one_interval(tmp_path):
    """warm-up 3 + interval 2 = 5: validations at 2 and 4 (score 90 and 10) save no best, the
    ones at 6, 8, 10 do; the best is iteration 8 (30 > 20, 25). max_keep_ckpts=1 keeps the last
    periodic checkpoint (and its pointer) besides the best."""
    runner = toy_runner(tmp_path, ToySegmentor(loss_warmup_iters=3))
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, DelayedBestCheckpointHook))
    assert hook.best_from_iter == 5
    assert checkpoint_files(tmp_path) == ['best_mIoU_iter_8.pth', 'iter_10.pth']
    assert runner.message_hub.get_info('best_score') == 30.0
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_10.pth')
    assert best_checkpoint(tmp_path).name == 'best_mIoU_iter_8.pth'
    assert torch.load(tmp_path / 'best_mIoU_iter_8.pth', weights_only=True)['meta']['iter'] == 8


def test_plain_checkpoint_hook_would_keep_the_pre_warmup_best(tmp_path):
    """The same run with save_best_after=0 (MMEngine's behaviour): the best is iteration 2."""
    toy_runner(tmp_path, ToySegmentor(loss_warmup_iters=3), save_best_after=0).train()
    assert checkpoint_files(tmp_path) == ['best_mIoU_iter_2.pth', 'iter_10.pth']


def test_explicit_iteration_and_model_without_warmup(tmp_path):
    # an int: from iteration 8 on (scores 30, 25 -> 8)
    runner = toy_runner(tmp_path / 'a', ToySegmentor(loss_warmup_iters=3), save_best_after=8)
    runner.train()
    assert checkpoint_files(tmp_path / 'a') == ['best_mIoU_iter_8.pth', 'iter_10.pth']
    # no decode_head: warm-up 0 + interval 2 -> validations from iteration 2 on count
    runner = toy_runner(tmp_path / 'b', ToyModel())
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, DelayedBestCheckpointHook))
    assert hook.best_from_iter == 2
    assert checkpoint_files(tmp_path / 'b') == ['best_mIoU_iter_2.pth', 'iter_10.pth']


def test_resumed_training_keeps_the_delay_and_replaces_the_best(tmp_path):
    toy_runner(tmp_path, ToySegmentor(loss_warmup_iters=3), max_iters=6).train()
    assert checkpoint_files(tmp_path) == ['best_mIoU_iter_6.pth', 'iter_6.pth']
    toy_runner(tmp_path, ToySegmentor(loss_warmup_iters=3), max_iters=10, resume=True).train()
    assert checkpoint_files(tmp_path) == ['best_mIoU_iter_8.pth', 'iter_10.pth']


def test_warmup_is_read_through_a_model_wrapper():
    assert loss_warmup_iters(nn.DataParallel(ToySegmentor(loss_warmup_iters=3))) == 3
    assert loss_warmup_iters(ToySegmentor(loss_warmup_iters=None)) == 0
    assert loss_warmup_iters(ToyModel()) == 0


@pytest.mark.parametrize('bad', ['warmup', -1, 2.5, True])
def test_bad_save_best_after_is_refused(bad):
    with pytest.raises(ValueError, match='save_best_after'):
        DelayedBestCheckpointHook(save_best='mIoU', save_best_after=bad)


def run_lpd(work, tools, seed=1):
    progress = Progress(1, stream=io.StringIO())
    return Executor(work, progress, tools).run_plan(build_plan(['lpd'], seeds=[seed]))


def test_runner_tests_last_and_best_and_records_both(tmp_path, fake_tools, monkeypatch):
    monkeypatch.setenv('FAKE_BEST', '3')  # fake mIoU = 50 + seed + iteration / 10
    assert run_lpd(tmp_path / 'w', fake_tools) == {'lpd__seed1': 'done'}
    run_dir = tmp_path / 'w' / 'runs' / 'lpd__seed1'
    result = load_result(run_dir)
    oracle = {choice: block['results']['oracle']['bg_counted']['mIoU']
              for choice, block in result['metrics_by_checkpoint'].items()}
    assert oracle == {'last': pytest.approx(51.6), 'best': pytest.approx(51.3)}
    assert result['metrics'] == result['metrics_by_checkpoint']['last']
    assert result['metrics'] == read_json(run_dir / 'test_metrics.json')
    assert result['metrics_by_checkpoint']['best'] == read_json(run_dir / 'test_metrics_best.json')
    assert result['checkpoints'] == {'last': str(run_dir.resolve() / 'iter_6.pth'),
                                     'best': str(run_dir.resolve() / 'best_mIoU_iter_3.pth')}
    assert result['protocol']['checkpoint'] == 'last'
    assert result['protocol']['checkpoint_path'] == result['checkpoints']['last']
    stages = {s['name']: s for s in result['cost']['stages']}
    assert list(stages) == ['train', 'test', 'test_best']
    assert stages['test_best']['attempts'] == 1 and stages['test_best']['wall_s'] > 0
    assert result['cost']['total_wall_s'] == pytest.approx(
        sum(s['wall_s'] for s in stages.values()), abs=1e-3)
    assert (run_dir / 'tested.txt').read_text().split() == ['iter_6.pth', 'best_mIoU_iter_3.pth']
    assert checkpoint_metrics(result, 'best') == result['metrics_by_checkpoint']['best']


def test_best_of_the_last_iteration_reuses_the_last_metrics(tmp_path, fake_tools, monkeypatch):
    monkeypatch.setenv('FAKE_BEST', '6')
    run_lpd(tmp_path / 'w', fake_tools)
    run_dir = tmp_path / 'w' / 'runs' / 'lpd__seed1'
    result = load_result(run_dir)
    assert result['metrics_by_checkpoint']['best'] == result['metrics']
    assert result['checkpoints']['best'].endswith('best_mIoU_iter_6.pth')
    best_stage = result['cost']['stages'][-1]
    assert best_stage == {'name': 'test_best', 'wall_s': 0.0, 'peak_rss_mb': None,
                          'attempts': 0, 'reused_from': 'test'}
    assert (run_dir / 'tested.txt').read_text().split() == ['iter_6.pth']  # tested once
    assert not (run_dir / 'test_metrics_best.json').exists()


def test_failed_best_test_resumes_without_retraining_or_retesting_last(
        tmp_path, fake_tools, monkeypatch):
    monkeypatch.setenv('FAKE_BEST', '3')
    monkeypatch.setenv('FAKE_TEST_FAIL', 'best_mIoU_iter_3.pth')
    assert run_lpd(tmp_path / 'w', fake_tools) == {'lpd__seed1': 'failed'}
    run_dir = tmp_path / 'w' / 'runs' / 'lpd__seed1'
    assert read_json(run_dir / 'failed.json')['stage'] == 'test_best'
    assert stage_record(run_dir, 'test') is not None and load_result(run_dir) is None
    monkeypatch.delenv('FAKE_TEST_FAIL')
    assert run_lpd(tmp_path / 'w', fake_tools) == {'lpd__seed1': 'done'}
    assert (run_dir / 'starts.txt').read_text().split() == ['0']  # trained once
    assert (run_dir / 'tested.txt').read_text().split() == [
        'iter_6.pth', 'best_mIoU_iter_3.pth', 'best_mIoU_iter_3.pth']  # last tested once
    stages = {s['name']: s for s in load_result(run_dir)['cost']['stages']}
    assert stages['test_best']['attempts'] == 2  # the failed attempt's time is counted


def test_results_without_the_new_keys_are_read():
    """A result written before both checkpoints were tested: metrics are the last one's."""
    old = {'metrics': {'results': {}}, 'protocol': {'checkpoint': 'last'}}
    assert checkpoint_metrics(old, 'last') is old['metrics']
    assert checkpoint_metrics(old, 'best') is None
    with pytest.raises(ValueError, match="'median'"):
        checkpoint_metrics(old, 'median')

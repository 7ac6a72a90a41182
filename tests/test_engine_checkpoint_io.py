"""MMEngine checkpoints load with torch.load(weights_only=True): resume and load_from on the toy
Runner of helpers.py (mmengine only, no data files)."""
import fractions

import pytest
import torch
from helpers import ToyModel, toy_runner
from mmengine.hooks import Hook
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

from lpd_bench.engine.checkpoint_io import CheckpointGlobalsError, history_buffer_method


class StartRecorder(Hook):
    """Remembers the iteration and the model weights when training starts."""

    def before_train(self, runner):
        self.start_iter = runner.iter
        self.weights = {k: v.clone() for k, v in runner.model.state_dict().items()}


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('first')
    toy_runner(work_dir).train()
    return work_dir / 'iter_2.pth'


def test_runner_checkpoint_loads_with_weights_only(checkpoint):
    ckpt = torch.load(checkpoint, weights_only=True)
    assert ckpt['meta']['iter'] == 2
    loss_history = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss_history, HistoryBuffer) and len(loss_history.data[0]) == 2
    assert loss_history.statistics('mean') == pytest.approx(loss_history.data[0].mean())


def test_resume_continues_at_saved_iteration(checkpoint, tmp_path):
    start = StartRecorder()
    runner = toy_runner(tmp_path, max_iters=4, custom_hooks=[start], resume=True,
                        load_from=str(checkpoint))
    runner.train()
    assert start.start_iter == 2 and runner.iter == 4
    assert (tmp_path / 'iter_4.pth').is_file()
    # the message hub history came back too: 2 saved losses + 2 new ones
    assert len(runner.message_hub.get_scalar('train/loss').data[0]) == 4


def test_load_from_loads_weights_and_starts_at_zero(checkpoint, tmp_path):
    start = StartRecorder()
    runner = toy_runner(tmp_path, custom_hooks=[start], load_from=str(checkpoint))
    runner.train()
    saved = torch.load(checkpoint, weights_only=True)['state_dict']
    assert start.start_iter == 0 and runner.iter == 2
    assert torch.equal(start.weights['linear.weight'], saved['linear.weight'])


def test_plain_state_dict_loads(tmp_path):
    """Third-party weights: a bare state dict goes through the same weights_only loader."""
    source, target = ToyModel(), ToyModel()
    torch.save(source.state_dict(), tmp_path / 'weights.pth')
    load_checkpoint(target, str(tmp_path / 'weights.pth'))
    assert torch.equal(target.linear.weight, source.linear.weight)


def test_unknown_global_is_named_in_the_error(tmp_path):
    path = tmp_path / 'odd.pth'
    torch.save(dict(state_dict={}, meta=dict(ratio=fractions.Fraction(1, 3))), path)
    with pytest.raises(CheckpointGlobalsError, match=r"odd\.pth.*\['fractions\.Fraction'\]"):
        CheckpointLoader.load_checkpoint(str(path))


def test_restricted_getattr_only_gives_history_buffer_methods():
    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for owner, name in ((HistoryBuffer, '__init__'), (HistoryBuffer, '_statistics_methods'),
                        (torch, 'load'), (HistoryBuffer, 'missing'), (HistoryBuffer, 3)):
        with pytest.raises(CheckpointGlobalsError, match='only public methods'):
            history_buffer_method(owner, name)

"""Testing the trained model in the training process: ``tools/train.py --test-after METRICS``.

``lpd-bench run`` trains and then tests every run. As two processes, the test pays a second
process start, the imports, a model build and a checkpoint load. With ``--test-after``, the
training process runs MMEngine's test loop right after training, on the weights it has just
trained and saved as its last checkpoint (MMEngine's ``Runner.test`` keeps the loaded weights),
writes the metric JSON to ``METRICS`` as ``tools/test.py --out METRICS`` would, and then runs the
``--after-test`` tasks (:mod:`.after_test`). The times it spent are written beside the metric JSON
(:func:`timing_file`), so that the runner can book them as the test's, not the training's.

A validation after the last iteration is then left out when nothing can come of it
(:class:`SkipLastValidationHook`): the test follows at once on the same weights, and no checkpoint
hook can save a best-on-val checkpoint from it (the CPU preset's stage-1 configs validate once, at
the end, and keep their best-on-val checkpoint from a later iteration on). It would only have been
a line in the log. A config whose last validation can make a best-on-val checkpoint (the paper
preset, a stage-2 config) keeps it.
"""
import json
import time
from pathlib import Path
from typing import Optional

from mmengine.hooks import CheckpointHook, Hook

from .atomic_json import write_json_atomic
from .best_checkpoint import DelayedBestCheckpointHook

TIMING_SUFFIX = '.timing.json'


def timing_file(metrics_file) -> Path:
    """Where :func:`test_trained_model` records its times."""
    return Path(f'{metrics_file}{TIMING_SUFFIX}')


def read_timing(metrics_file) -> Optional[dict]:
    try:
        return json.loads(timing_file(metrics_file).read_text())
    except (OSError, ValueError):
        return None


def test_trained_model(runner, cfg, metrics_file, task_file=None, log=print) -> dict:
    """Run the test loop of ``runner`` (after ``runner.train()``) and the tasks of
    ``task_file``; returns and records ``{'test_wall_s', 'after_test_wall_s', 'metrics'}``."""
    from .after_test import run_task_file
    timing_file(metrics_file).unlink(missing_ok=True)
    start = time.monotonic()
    metrics = runner.test()
    test_wall = time.monotonic() - start
    log(f'metric JSON of the trained model: {metrics_file}')
    outcomes = run_task_file(task_file, runner.model, cfg, log) if task_file else []
    record = {'test_wall_s': round(test_wall, 3),
              'after_test_wall_s': round(sum(o['wall_s'] for o in outcomes), 3),
              'metrics_file': str(metrics_file)}
    write_json_atomic(timing_file(metrics_file), record)
    return {**record, 'metrics': metrics}


def can_save_best_now(runner) -> bool:
    """Whether a validation now could make a best-on-val checkpoint: some checkpoint hook has
    ``save_best`` and, for :class:`DelayedBestCheckpointHook`, its first iteration has come."""
    return any(hook.saves_best_at(runner.iter) if isinstance(hook, DelayedBestCheckpointHook)
               else bool(hook.save_best) for hook in runner.hooks
               if isinstance(hook, CheckpointHook))


class SkipLastValidationHook(Hook):
    """Leaves out the validation after the last training iteration when no best-on-val
    checkpoint can come of it (module doc; ``tools/train.py --test-after`` registers it).
    Earlier validations run as usual."""

    priority = 'LOWEST'

    def __init__(self, log=print):
        self.log = log

    def before_train(self, runner) -> None:
        loop = runner.val_loop
        if loop is None:
            return
        validate = loop.run

        def run_unless_last():
            if runner.iter >= runner.max_iters and not can_save_best_now(runner):
                self.log(f'Validation at iteration {runner.iter} left out: the test follows on '
                         'the same weights (--test-after) and no best-on-val checkpoint can '
                         'come of it.')
                return None
            return validate()

        loop.run = run_unless_last

"""DelayedBestCheckpointHook: the project's checkpoint hook; its best-on-val checkpoint starts late.

The best-on-val checkpoint (``save_best``, e.g. ``best_mIoU_iter_7029.pth``) is created or
replaced only by validations at iteration ``save_best_after`` or later; earlier validations are
logged as usual but neither save a checkpoint nor set the best score (so the first validation
from ``save_best_after`` on always saves one). Periodic checkpoints, ``max_keep_ckpts`` and the
last checkpoint behave exactly as in ``CheckpointHook``; every file is written atomically
and the checkpoint ``max_keep_ckpts`` drops is deleted after the new one is saved
(``AtomicCheckpointHook``, its base: lpd_bench/engine/atomic_checkpoint.py).

``save_best_after``:

- ``'warmup+interval'`` (default): the model's ``decode_head.loss_warmup_iters`` (0 when the model
  has no such head; a distributed wrapper is unwrapped) plus the train loop's validation interval
  in iterations (an epoch-based loop: ``val_interval`` epochs x iterations per epoch). Before the
  warm-up the refiner and diversity losses are off, so a model validated then is not the method.
- an int >= 0: that iteration.

It is resolved in ``before_train`` (and logged); the iteration compared is ``runner.iter``, the
number of iterations done when the validation runs.
"""
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from mmseg.registry import HOOKS

from .atomic_checkpoint import AtomicCheckpointHook

WARMUP_PLUS_INTERVAL = 'warmup+interval'


def loss_warmup_iters(model) -> int:
    """``decode_head.loss_warmup_iters`` of ``model`` (unwrapped), 0 when there is none."""
    model = model.module if is_model_wrapper(model) else model
    head = getattr(model, 'decode_head', None)
    return int(getattr(head, 'loss_warmup_iters', 0) or 0)


def val_interval_iters(train_loop) -> int:
    """Iterations between two validations of ``train_loop`` (IterBased or EpochBased)."""
    interval = int(train_loop.val_interval)
    if isinstance(train_loop, EpochBasedTrainLoop):
        interval *= len(train_loop.dataloader)
    return interval


def first_best_iter(save_best_after, warmup: int, interval: int) -> int:
    """``save_best_after`` resolved (module doc): an int as is, 'warmup+interval' as ``warmup``
    (the loss warm-up) plus ``interval`` (one validation interval), in iterations."""
    if save_best_after == WARMUP_PLUS_INTERVAL:
        return int(warmup) + int(interval)
    return int(save_best_after)


@HOOKS.register_module()
class DelayedBestCheckpointHook(AtomicCheckpointHook):
    """``AtomicCheckpointHook`` saving the best-on-val checkpoint only from ``save_best_after`` on
    (module doc); every other argument is MMEngine ``CheckpointHook``'s."""

    def __init__(self, *args, save_best_after=WARMUP_PLUS_INTERVAL, **kwargs):
        super().__init__(*args, **kwargs)
        if save_best_after != WARMUP_PLUS_INTERVAL and not (
                isinstance(save_best_after, int) and not isinstance(save_best_after, bool)
                and save_best_after >= 0):
            raise ValueError(f'DelayedBestCheckpointHook: save_best_after must be '
                             f'{WARMUP_PLUS_INTERVAL!r} or an int >= 0, got {save_best_after!r}')
        self.save_best_after = save_best_after
        self.best_from_iter = save_best_after if isinstance(save_best_after, int) else None

    def resolve_save_best_after(self, runner) -> int:
        """The first iteration whose validation may save the best checkpoint."""
        return first_best_iter(self.save_best_after, loss_warmup_iters(runner.model),
                               val_interval_iters(runner.train_loop))

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self.best_from_iter = self.resolve_save_best_after(runner)
        if self.save_best:
            runner.logger.info(f'Best-on-val checkpoint ({", ".join(self.key_indicators)}) '
                               f'saved from iteration {self.best_from_iter} on '
                               f'(save_best_after={self.save_best_after!r}).')

    def saves_best_at(self, iteration: int) -> bool:
        """Whether a validation after ``iteration`` iterations may save the best checkpoint."""
        return bool(self.save_best) and self.best_from_iter is not None \
            and iteration >= self.best_from_iter

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self.save_best:
            return
        if not self.saves_best_at(runner.iter):
            runner.logger.info(
                f'Validation at iteration {runner.iter}: no best checkpoint before iteration '
                f'{self.best_from_iter} (save_best_after={self.save_best_after!r}).')
            return
        super()._save_best_checkpoint(runner, metrics)

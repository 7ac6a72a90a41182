"""AtomicCheckpointHook: MMEngine's CheckpointHook whose files a kill cannot leave half-written.

Same arguments, names and checkpoint contents as ``CheckpointHook``; what changes is how the
files reach the disk (lpd_bench/engine/checkpoint_files.py has the why):

- every checkpoint (``iter_N.pth``, ``best_<metric>_iter_N.pth``) is written through the
  ``'lpd_atomic_local'`` file backend: a temp file in the same folder, fsynced, then
  ``os.replace`` (the hook sets ``backend_args=dict(backend='lpd_atomic_local')`` unless
  ``backend_args``/``file_client_args`` or a remote ``out_dir`` are given);
- the ``last_checkpoint`` pointer is written the same way;
- a checkpoint that ``max_keep_ckpts`` drops is deleted after the new one and the pointer are on
  disk (MMEngine deletes it first, so a kill during the save left no checkpoint at all), and so
  is the previous best-on-val checkpoint after the new best one is saved.

So at any moment the pointer names a complete checkpoint, at most one interval old. For a moment
two periodic checkpoints (and two best ones) are on disk, plus the temp file being written.
The project's ``DelayedBestCheckpointHook`` (configs/_base_/default_runtime.py) derives from it.
"""
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from mmseg.registry import HOOKS

from .checkpoint_files import ATOMIC_BACKEND, write_pointer


def _is_remote(out_dir) -> bool:
    return out_dir is not None and '://' in str(out_dir)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` writing checkpoints and the pointer atomically (module doc)."""

    def __init__(self, *args, out_dir=None, backend_args=None, file_client_args=None, **kwargs):
        if backend_args is None and file_client_args is None and not _is_remote(out_dir):
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, out_dir=out_dir, backend_args=backend_args,
                         file_client_args=file_client_args, **kwargs)

    def _keep(self, runner, step):
        """MMEngine's ``max_keep_ckpts`` bookkeeping for a save at ``step``; returns the step
        whose checkpoint is to be deleted once the new one is saved (None: none)."""
        if self.max_keep_ckpts <= 0:
            return None
        if len(self.keep_ckpt_ids) > 0 and self.keep_ckpt_ids[-1] == step:
            return None  # saved again at the same step (_save_best_checkpoint does)
        dropped = None
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            dropped = self.keep_ckpt_ids.popleft()
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        return dropped if dropped != step else None

    def _remove(self, path) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed are directories
            self.file_backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step, meta):
        """``CheckpointHook._save_checkpoint_with_step``, reordered: save (atomically), write
        the pointer (atomically), then delete the checkpoint ``max_keep_ckpts`` drops."""
        dropped = self._keep(runner, step)
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, ckpt_filename, self.file_client_args,
            save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
            meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        # Model parallel-like training pulls sharded states from all ranks; the rest is rank 0's.
        if not is_main_process():
            return
        write_pointer(runner.work_dir, self.last_ckpt)
        if dropped is not None:
            self._remove(self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(dropped)))

    def _best_paths(self):
        if self.key_indicators and len(self.key_indicators) == 1:
            return {None: self.best_ckpt_path}
        return dict(self.best_ckpt_path_dict)

    def _set_best_paths(self, paths) -> None:
        for key, path in paths.items():
            if key is None:
                self.best_ckpt_path = path
            else:
                self.best_ckpt_path_dict[key] = path

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """``CheckpointHook._save_best_checkpoint`` deleting the previous best checkpoint after
        the new one is saved, not before (the hook only deletes a best path it holds, so it is
        hidden from it for the call)."""
        if not self.save_best:
            return super()._save_best_checkpoint(runner, metrics)
        previous = self._best_paths()
        self._set_best_paths({key: None for key in previous})
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            current = self._best_paths()
            # not updated: the previous best stays the best
            self._set_best_paths({key: path for key, path in previous.items()
                                  if current.get(key) is None})
        for key, old in previous.items():
            new = self._best_paths().get(key)
            if old and new and new != old and is_main_process():
                self._remove(old)
                runner.logger.info(f'The previous best checkpoint {old} is removed')

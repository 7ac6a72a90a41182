"""CostRecorderHook: what training and testing cost -> ``cost_train.json`` / ``cost_test.json``.

Each file (in the runner's ``work_dir``, written atomically by rank 0) holds::

    {"stage": "train", "world_size": 1, "device": "cpu", "params": 123, "trainable_params": 120,
     "segments": [{"start_iter": 0, "end_iter": 2, "iters": 2, "images": 4, "wall_s": 1.2,
                   "images_per_s": 3.3, "peak_rss_mb": 410.5, "peak_cuda_mb": null,
                   "complete": true}, ...],
     "totals": {"iters": .., "images": .., "wall_s": .., "images_per_s": .., "peak_rss_mb": ..,
                "peak_cuda_mb": ..}}

- A segment runs from ``before_train`` to ``after_train`` (``before_test`` to ``after_test``).
  Validation done during training is inside the training wall time.
- Resumed training (the runner starts above iteration 0) appends a segment to the existing file;
  training from iteration 0 starts a new file. Each test replaces ``cost_test.json``.
- The file is also written, with ``"complete": false``, whenever a checkpoint is saved, so that a
  crashed segment keeps the time up to its last checkpoint.
- Iterations and images are those of this process (per rank); totals sum the segments, the
  peaks are maxima; ``images_per_s`` = images / wall_s.
- Memory in MiB: ``peak_rss_mb`` is the process's peak resident set since it started
  (``ru_maxrss``, not resettable); ``peak_cuda_mb`` is ``torch.cuda.max_memory_allocated`` since
  the segment started, ``null`` when CUDA is not in use.
"""
import json
import os.path as osp
import resource
import time

import torch
from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmseg.registry import HOOKS

from .atomic_json import write_json_atomic

SUMMED = ('iters', 'images', 'wall_s')
PEAKS = ('peak_rss_mb', 'peak_cuda_mb')


def batch_size(data_batch):
    """Number of images in a batch: ``data_samples`` or ``inputs`` of a dict, or its length."""
    if isinstance(data_batch, dict):
        key = 'data_samples' if 'data_samples' in data_batch else 'inputs'
        data_batch = data_batch[key]
    return data_batch.shape[0] if isinstance(data_batch, torch.Tensor) else len(data_batch)


def peak_rss_mb():
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cuda_in_use():
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def totals(segments):
    """Summed iters/images/wall_s, maximal peaks and images_per_s over segments."""
    out = {key: sum(segment[key] for segment in segments) for key in SUMMED}
    for key in PEAKS:
        values = [segment[key] for segment in segments if segment[key] is not None]
        out[key] = max(values) if values else None
    out['images_per_s'] = out['images'] / out['wall_s'] if out['wall_s'] > 0 else None
    return out


@HOOKS.register_module()
class CostRecorderHook(Hook):
    """Record wall time, iterations, images/s, peak memory and parameter counts (module doc)."""

    priority = 'VERY_LOW'

    def __init__(self):
        self._stage = None

    def before_train(self, runner):
        previous = self._read(runner, 'train') if runner.iter > 0 else []
        self._start(runner, 'train', previous)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._count(data_batch)

    def before_save_checkpoint(self, runner, checkpoint):
        if self._stage == 'train':
            self._write(runner, complete=False)

    def after_train(self, runner):
        self._write(runner, complete=True)
        self._stage = None

    def before_test(self, runner):
        self._start(runner, 'test', [])

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._count(data_batch)

    def after_test(self, runner):
        self._write(runner, complete=True)
        self._stage = None

    def _start(self, runner, stage, previous):
        self._stage, self._previous = stage, previous
        self._start_iter = runner.iter if stage == 'train' else 0
        self._iters = self._images = 0
        if cuda_in_use():
            torch.cuda.reset_peak_memory_stats()
        self._t0 = time.perf_counter()

    def _count(self, data_batch):
        self._iters += 1
        self._images += batch_size(data_batch) if data_batch is not None else 0

    @staticmethod
    def _path(runner, stage):
        return osp.join(runner.work_dir, f'cost_{stage}.json')

    def _read(self, runner, stage):
        """Segments of an earlier ``cost_<stage>.json`` in the work_dir ([] if none)."""
        path = self._path(runner, stage)
        if not osp.isfile(path):
            return []
        try:
            with open(path) as f:
                return json.load(f)['segments']
        except (ValueError, KeyError) as err:
            raise ValueError(f'{path}: not a cost file of CostRecorderHook ({err})') from err

    def _segment(self, complete):
        wall_s = time.perf_counter() - self._t0
        return dict(
            start_iter=self._start_iter, end_iter=self._start_iter + self._iters,
            iters=self._iters, images=self._images, wall_s=wall_s,
            images_per_s=self._images / wall_s if wall_s > 0 else None,
            peak_rss_mb=peak_rss_mb(),
            peak_cuda_mb=torch.cuda.max_memory_allocated() / 2**20 if cuda_in_use() else None,
            complete=complete)

    def _write(self, runner, complete):
        if not is_main_process():
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        segments = self._previous + [self._segment(complete)]
        write_json_atomic(self._path(runner, self._stage), dict(
            stage=self._stage, world_size=get_world_size(),
            device='cuda' if cuda_in_use() else 'cpu',
            params=sum(p.numel() for p in model.parameters()),
            trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
            segments=segments, totals=totals(segments)))

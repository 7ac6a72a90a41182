"""DenseCRF post-processing of the fused test maps, and the worker pool that runs it per batch.

:func:`dense_crf` refines one image's (K, H, W) scores with a fully connected CRF (pydensecrf,
installed by the ``pydensecrf2`` package). The parameter set is named:

- ``'public'`` (paper protocol, what LPD's public evaluation always runs): unary = -log of the
  softmax over the K channels (clipped at 1e-5, as ``pydensecrf.utils.unary_from_softmax``),
  Gaussian kernel sxy 15 compat 30, bilateral kernel sxy 10 srgb 20 compat 50, 5 mean-field
  iterations;
- ``'affinitynet'`` (this project's earlier CRF, AffinityNet's ``crf_inference`` kernels): unary =
  -log of the scores divided by their per-pixel sum (clipped at 1e-8), Gaussian sxy 3 compat 3,
  bilateral sxy 80 srgb 13 compat 10, 10 iterations.

A dict gives the fields of :class:`CRFParams` (missing ones from ``'public'``).

The colour image is the de-normalised uint8 input in the channel order it was loaded in: BGR
(``LoadImageFromFile``), as the public code feeds the OpenCV BGR image to the bilateral kernel.

:func:`run_dense_crf` refines a list of (image, scores) pairs, in this process or in a lazily
created process pool that is kept and reused (one per worker count): the CRF is numpy/C++ work
that releases nothing to torch, so a batch's images run in parallel on the available cores.
"""
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

UNARIES = ('softmax', 'normalize')


@dataclass(frozen=True)
class CRFParams:
    """Kernels, iterations and unary of one DenseCRF parameter set (module docstring)."""

    gaussian_sxy: float = 15
    gaussian_compat: float = 30
    bilateral_sxy: float = 10
    bilateral_srgb: float = 20
    bilateral_compat: float = 50
    iterations: int = 5
    unary: str = 'softmax'

    def __post_init__(self):
        if self.unary not in UNARIES:
            raise ValueError(f'crf_params.unary must be one of {UNARIES}, got {self.unary!r}')
        if int(self.iterations) != self.iterations or self.iterations < 1:
            raise ValueError(f'crf_params.iterations must be a positive int, got '
                             f'{self.iterations!r}')


CRF_PRESETS: Dict[str, CRFParams] = {
    'public': CRFParams(),
    'affinitynet': CRFParams(gaussian_sxy=3, gaussian_compat=3, bilateral_sxy=80,
                             bilateral_srgb=13, bilateral_compat=10, iterations=10,
                             unary='normalize'),
}


def resolve_crf_params(spec: Union[str, dict, CRFParams]) -> CRFParams:
    """A preset name (``CRF_PRESETS``), a dict of :class:`CRFParams` fields, or the params."""
    if isinstance(spec, CRFParams):
        return spec
    if isinstance(spec, str):
        if spec not in CRF_PRESETS:
            raise ValueError(f'test_cfg.crf_params {spec!r} is not a preset name; known: '
                             f'{sorted(CRF_PRESETS)} (or give a dict of {_field_names()})')
        return CRF_PRESETS[spec]
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(_field_names()))
        if unknown:
            raise ValueError(f'test_cfg.crf_params has unknown keys {unknown}; known: '
                             f'{_field_names()}')
        return CRFParams(**dict(asdict(CRF_PRESETS['public']), **spec))
    raise TypeError(f'test_cfg.crf_params must be a preset name or a dict, got {spec!r}')


def _field_names() -> List[str]:
    return [f.name for f in fields(CRFParams)]


def import_densecrf():
    """The ``pydensecrf.densecrf`` module (installed by ``pydensecrf2``)."""
    try:
        import pydensecrf.densecrf as densecrf
    except ImportError as err:
        raise ImportError('test_cfg.crf=True needs DenseCRF: pip install pydensecrf2') from err
    return densecrf


def crf_unary(scores: np.ndarray, kind: str) -> np.ndarray:
    """(K, H, W) scores -> (K, H*W) float32 unary energy -log(p).

    ``kind='softmax'``: p = softmax over the K channels, clipped to [1e-5, 1]. ``'normalize'``:
    p = scores / per-pixel sum (non-negative scores), clipped to [1e-8, 1].
    """
    scores = np.asarray(scores, dtype=np.float32)
    if kind == 'softmax':
        shifted = np.exp(scores - scores.max(axis=0, keepdims=True))
        probs, floor = shifted / shifted.sum(axis=0, keepdims=True), 1e-5
    elif kind == 'normalize':
        probs, floor = scores / np.maximum(scores.sum(axis=0, keepdims=True), 1e-8), 1e-8
    else:
        raise ValueError(f'unary must be one of {UNARIES}, got {kind!r}')
    unary = -np.log(np.clip(probs, floor, 1.0))
    return np.ascontiguousarray(unary.reshape(scores.shape[0], -1), dtype=np.float32)


def dense_crf(image: np.ndarray, scores: np.ndarray,
              params: Union[str, dict, CRFParams] = 'public') -> np.ndarray:
    """Refine one image's class scores with a fully connected CRF.

    Args:
        image: (H, W, 3) uint8 colour image (BGR as loaded; see the module docstring).
        scores: (K, H, W) scores; turned into the unary by ``params.unary``.
        params: a parameter set (:func:`resolve_crf_params`).
    Returns:
        (K, H, W) float32 refined marginals (sum 1 per pixel).
    """
    params = resolve_crf_params(params)
    densecrf = import_densecrf()
    num_labels, height, width = scores.shape
    if image.shape != (height, width, 3) or image.dtype != np.uint8:
        raise ValueError(f'dense_crf needs a ({height}, {width}, 3) uint8 image, got '
                         f'{image.shape} {image.dtype}')
    crf = densecrf.DenseCRF2D(width, height, num_labels)
    crf.setUnaryEnergy(crf_unary(scores, params.unary))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(sxy=params.bilateral_sxy, srgb=params.bilateral_srgb,
                             rgbim=np.ascontiguousarray(image), compat=params.bilateral_compat)
    refined = crf.inference(int(params.iterations))
    return np.asarray(refined, dtype=np.float32).reshape(num_labels, height, width)


def _crf_task(task: Tuple[np.ndarray, np.ndarray, CRFParams]) -> np.ndarray:
    return dense_crf(*task)


def available_cores() -> int:
    """CPU cores this process may use: shared among the local ranks of a distributed run, and
    at most the process's intra-op thread count (``OMP_NUM_THREADS``, which ``lpd-bench run``
    sets to cores // concurrent runs), so that concurrent runs do not oversubscribe the cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    cores = cores // max(1, int(os.environ.get('LOCAL_WORLD_SIZE', 1)))
    return max(1, min(cores, torch.get_num_threads()))


def resolve_workers(workers: Optional[int]) -> int:
    """``test_cfg.crf_workers``: None = :func:`available_cores` (in process when that is 1);
    0 = in process; n = a pool of n processes."""
    if workers is None:
        cores = available_cores()
        return 0 if cores == 1 else cores
    if int(workers) != workers or workers < 0:
        raise ValueError(f'test_cfg.crf_workers must be None or an int >= 0, got {workers!r}')
    return int(workers)


_POOLS: Dict[int, ProcessPoolExecutor] = {}


def crf_pool(workers: int) -> ProcessPoolExecutor:
    """The process pool of ``workers`` processes, created on first use and then reused.

    Workers are forked where the platform allows it (no re-import, instant start; they run only
    numpy and pydensecrf, never torch), spawned elsewhere.
    """
    pool = _POOLS.get(workers)
    if pool is None:
        method = 'fork' if 'fork' in multiprocessing.get_all_start_methods() else 'spawn'
        pool = ProcessPoolExecutor(max_workers=workers,
                                   mp_context=multiprocessing.get_context(method))
        _POOLS[workers] = pool
    return pool


def shutdown_crf_pools() -> None:
    """Stop every pool (they are also stopped at interpreter exit)."""
    while _POOLS:
        _POOLS.popitem()[1].shutdown(wait=True)


def run_dense_crf(tasks: Sequence[Tuple[np.ndarray, np.ndarray]],
                  params: Union[str, dict, CRFParams] = 'public',
                  workers: Optional[int] = None) -> List[np.ndarray]:
    """:func:`dense_crf` of every (image, scores) pair, in order.

    ``workers`` as ``test_cfg.crf_workers`` (:func:`resolve_workers`); a single task runs in
    process. The pool gets the tasks in about one chunk per worker.
    """
    params = resolve_crf_params(params)
    import_densecrf()  # fail here, with the install hint, rather than in a worker
    workers = resolve_workers(workers)
    jobs = [(image, scores, params) for image, scores in tasks]
    if workers == 0 or len(jobs) <= 1:
        return [_crf_task(job) for job in jobs]
    chunksize = max(1, -(-len(jobs) // workers))
    return list(crf_pool(workers).map(_crf_task, jobs, chunksize=chunksize))

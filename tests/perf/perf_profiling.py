"""Where the time of one call goes: torch.profiler operators and cProfile project functions.

Used by check_targets.py ``--profile`` on the benchmark cases behind failed targets.
"""
import cProfile
import os.path as osp
import pstats
from typing import Callable, Dict, List, Optional

import torch

#: Path fragments of the functions worth listing from cProfile (the project and mmseg).
PROJECT_PATHS = (osp.join('lpd_bench', ''), osp.join('baselines', ''), osp.join('mmseg', ''))


def torch_ops(run: Callable[[], object], top: int = 10) -> List[str]:
    """Top ``top`` operators of one call of ``run`` by self CPU time, one line each."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        run()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [f'op {e.key}: self CPU {e.self_cpu_time_total / 1e6:.3f} s '
            f'({100 * e.self_cpu_time_total / total:.1f}%), {e.count} calls' for e in events[:top]]


def python_functions(run: Callable[[], object], top: int = 10) -> List[str]:
    """Top ``top`` project/mmseg functions of one call of ``run`` by cumulative time."""
    prof = cProfile.Profile()
    prof.runcall(run)
    stats = pstats.Stats(prof)
    rows = [(ct, nc, f'{osp.basename(file)}:{line} {func}')
            for (file, line, func), (_, nc, _, ct, _) in stats.stats.items()
            if any(p in file for p in PROJECT_PATHS)]
    rows.sort(reverse=True)
    return [f'fn {name}: cumulative {ct:.3f} s, {nc} calls' for ct, nc, name in rows[:top]]


def profile_lines(run: Callable[[], object], top: int = 10) -> List[str]:
    """Both views of one call each (the caller has warmed ``run`` up)."""
    return torch_ops(run, top) + python_functions(run, top)


def profile_case(preset: str, name: str, batch: int, size: int, device: str = 'cpu',
                 cfg_options: Optional[Dict] = None, root: str = '.', top: int = 10) -> List[str]:
    """Both views of one warmed-up call of the benchmark case ``name`` of ``preset``, built as
    ``lpd-bench bench`` builds it (its config under ``root``, ``cfg_options`` for every config)."""
    from lpd_bench.bench import cases as C
    spec = C.case_by_name(preset, name)
    with C.prepared(spec, osp.join(root, C.case_config(preset, spec)), batch, size, device,
                    cfg_options or {}) as case:
        case.run()
        return profile_lines(case.run, top)

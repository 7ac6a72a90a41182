"""Peak memory of one benchmark case.

CPU: ``ru_maxrss`` is a process-wide high-water mark that never goes down, so a case's peak is
measured in a fresh subprocess that builds only that case and runs it twice (the second call has
the optimizer state and the allocator's steady state). The figure is the whole process's peak
resident memory (Python, torch, mmseg imports included), i.e. what a real run of that workload
needs. CUDA: ``torch.cuda.max_memory_allocated`` after a reset, in the benchmark process.

Run as a module it is that subprocess: ``python -m lpd_bench.bench.memory 'JSON'`` prints one JSON
line ``{"peak_mib": .., "after_build_mib": .., "over_cap": false}``. With ``address_space_cap_mib``
in the request the probe runs under that ``RLIMIT_AS`` (a guard for shared machines: a case that
needs more fails its allocation instead of exhausting the machine) and reports ``over_cap: true``.
"""
import json
import os
import resource
import subprocess
import sys
from typing import Optional

import torch

from ..engine.hooks import peak_rss_mb

PROBE_CALLS = 2


def cpu_peak_in_subprocess(request: dict, timeout: Optional[float] = None) -> dict:
    """Run the probe for ``request`` (see :func:`probe`) in a fresh interpreter; its JSON result."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    proc = subprocess.run([sys.executable, '-m', 'lpd_bench.bench.memory', json.dumps(request)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f'memory probe of case {request["spec"]["name"]!r} failed '
                           f'(exit {proc.returncode}):\n{proc.stderr[-3000:]}')
    return json.loads(lines[-1])


def cuda_peak_mib(run, calls: int = PROBE_CALLS) -> float:
    """Peak CUDA memory allocated (MiB) over ``calls`` calls of ``run``."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(calls):
        run()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def probe(request: dict) -> dict:
    """Build ``request['spec']`` and run it ``PROBE_CALLS`` times; peak RSS after build and overall."""
    from lpd_bench.bench.cases import CaseSpec, prepared
    torch.set_num_threads(int(request.get('threads', torch.get_num_threads())))
    cap = request.get('address_space_cap_mib')
    if cap:
        limit = int(cap * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    spec = CaseSpec(**request['spec'])
    after_build = None
    try:
        with prepared(spec, request['config'], request['batch'], request['size'], 'cpu',
                      request.get('cfg_options')) as case:
            after_build = peak_rss_mb()
            for _ in range(PROBE_CALLS):
                case.run()
    except (MemoryError, RuntimeError) as err:
        if not cap or not isinstance(err, MemoryError) and 'alloc' not in str(err):
            raise
        return {'peak_mib': peak_rss_mb(), 'after_build_mib': after_build, 'over_cap': True,
                'error': str(err)[:300]}
    return {'peak_mib': peak_rss_mb(), 'after_build_mib': after_build, 'over_cap': False}


if __name__ == '__main__':
    print(json.dumps(probe(json.loads(sys.argv[1]))))

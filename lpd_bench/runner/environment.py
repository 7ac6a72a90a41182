"""What a measurement records about the software and machine it ran on: git commit, packages,
threads, CPU, memory. The one source of both the run results' ``env`` (:func:`environment`) and
the benchmark's environment table (:func:`bench_environment`)."""
import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Dict, Optional

#: Distribution names recorded, keyed by their import name.
PACKAGES = {'torch': 'torch', 'mmengine': 'mmengine', 'mmcv': 'mmcv', 'mmseg': 'mmsegmentation',
            'numpy': 'numpy', 'faiss': 'faiss-cpu'}
#: A copy of the tree sent elsewhere (e.g. to a lent machine, whose .git may be stale or
#: missing) says its commit in this environment variable, which wins over git.
COMMIT_VARIABLE = 'LPD_GIT_COMMIT'


def _git(repo, *args):
    try:
        out = subprocess.run(['git', *args], cwd=repo, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(repo) -> dict:
    """HEAD commit and whether tracked files differ from it (None when not a git checkout).
    ``$LPD_GIT_COMMIT``, when set, is the commit (dirty state then unknown: None)."""
    if os.environ.get(COMMIT_VARIABLE):
        return {'git_commit': os.environ[COMMIT_VARIABLE], 'git_dirty': None}
    commit = _git(repo, 'rev-parse', 'HEAD')
    status = _git(repo, 'status', '--porcelain', '--untracked-files=no')
    return {'git_commit': commit, 'git_dirty': None if status is None else bool(status)}


def package_versions() -> Dict[str, Optional[str]]:
    """Installed version of each of :data:`PACKAGES` (None: not installed)."""
    versions = {}
    for name, dist in PACKAGES.items():
        try:
            versions[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment(repo) -> dict:
    """The ``env`` of a run result: git state, python, packages, threads (``OMP_NUM_THREADS``,
    else the cores), host."""
    threads = os.environ.get('OMP_NUM_THREADS')
    return {**git_state(Path(repo)), 'python': platform.python_version(),
            'packages': package_versions(),
            'threads': int(threads) if threads and threads.isdigit() else os.cpu_count(),
            'host': platform.node()}


def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> Optional[float]:
    """Physical memory of the machine (None when unknown)."""
    try:
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def bench_environment(repo, device: str = 'cpu', command: str = '') -> Dict[str, str]:
    """The benchmark's environment table (name -> text): the command, the machine (CPU, cores,
    memory, torch threads, device), python, packages, commit, load and time of the measurement.
    The names are those perf.md shows (``lpd_bench.bench.report.MACHINE_ENV`` picks some)."""
    import torch
    git = git_state(Path(repo))
    commit = git['git_commit'] or 'unknown'
    if git['git_dirty']:
        commit += ' (tracked files modified)'
    memory = memory_gib()
    versions = ', '.join(f'{name} {version or "(not installed)"}'
                         for name, version in package_versions().items())
    now = datetime.datetime.now(datetime.timezone.utc)
    return {'command': f'`{command}`' if command else '',
            'CPU': cpu_model(), 'cores (os.cpu_count)': str(os.cpu_count()),
            'memory (GiB)': 'unknown' if memory is None else f'{memory:.0f}',
            'torch threads': str(torch.get_num_threads()),
            'device': torch.cuda.get_device_name() if device.startswith('cuda') else 'cpu',
            'python': platform.python_version(), 'versions': versions, 'git commit': commit,
            'load average (1, 5, 15 min) at start': ', '.join(f'{v:.1f}' for v in os.getloadavg()),
            'measured at (UTC)': now.strftime('%Y-%m-%d %H:%M')}

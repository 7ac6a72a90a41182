"""What a result records about the software it ran with: git commit, packages, threads."""
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

#: Distribution names recorded in every result, keyed by their import name.
PACKAGES = {'torch': 'torch', 'mmengine': 'mmengine', 'mmcv': 'mmcv', 'mmseg': 'mmsegmentation',
            'numpy': 'numpy'}


def _git(repo, *args):
    try:
        out = subprocess.run(['git', *args], cwd=repo, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(repo) -> dict:
    """HEAD commit and whether tracked files differ from it (None when not a git checkout)."""
    commit = _git(repo, 'rev-parse', 'HEAD')
    status = _git(repo, 'status', '--porcelain', '--untracked-files=no')
    return {'git_commit': commit, 'git_dirty': None if status is None else bool(status)}


def package_versions() -> dict:
    versions = {}
    for name, dist in PACKAGES.items():
        try:
            versions[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment(repo) -> dict:
    threads = os.environ.get('OMP_NUM_THREADS')
    return {**git_state(Path(repo)), 'python': platform.python_version(),
            'packages': package_versions(),
            'threads': int(threads) if threads and threads.isdigit() else os.cpu_count(),
            'host': platform.node()}

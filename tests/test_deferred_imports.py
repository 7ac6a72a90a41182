"""``import lpd_bench`` keeps transformers out of the process, yet Adafactor still builds."""
import subprocess
import sys

import pytest

from helpers import REPO

pytest.importorskip('transformers')

PROBE = '''
import sys
import lpd_bench  # noqa: F401
import mmseg.apis, mmengine.runner  # noqa: F401,E401
print('after import:', 'transformers' in sys.modules)
import torch
from mmengine.registry import OPTIMIZERS
optim = OPTIMIZERS.build(dict(type='Adafactor', params=[torch.nn.Parameter(torch.ones(3))],
                              lr=1e-2, relative_step=False, scale_parameter=False))
print('built:', type(optim).__module__, type(optim).__name__)
'''


def test_transformers_is_imported_only_when_adafactor_is_built():
    proc = subprocess.run([sys.executable, '-c', PROBE], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert 'after import: False' in lines
    assert 'built: transformers.optimization Adafactor' in lines


def test_nothing_changes_once_mmengine_optim_is_imported():
    from lpd_bench.deferred_imports import defer_transformers_optimizers
    import mmengine.optim  # noqa: F401  (imported by the test session already)
    assert defer_transformers_optimizers() is False

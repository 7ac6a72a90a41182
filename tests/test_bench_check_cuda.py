"""tools/check_cuda.py skips cleanly without CUDA."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

SCRIPT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools', 'check_cuda.py')


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA present: the check would really run')
def test_check_cuda_skips_on_cpu():
    proc = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=120,
                          env={'CUDA_VISIBLE_DEVICES': '', 'PATH': '/usr/bin:/bin'})
    assert proc.returncode == 0, proc.stderr
    assert 'CUDA not available, skipped' in proc.stdout

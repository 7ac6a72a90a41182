"""Distributed training for real on CPU: two gloo processes via tools/dist_train.sh (torchrun)."""
import os.path as osp
import socket
import sys

import pytest

from helpers import CONFIG, TINY_OPTIONS, checkpoint_iter, logged_iters, run


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_training(tiny_data, tmp_path):
    work_dir = str(tmp_path / 'dist')
    proc = run(
        ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work_dir, '--cfg-options',
         f'data_root={tiny_data}', *TINY_OPTIONS],
        env=dict(PYTHON=sys.executable, PORT=str(free_port())))
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert checkpoint_iter(osp.join(work_dir, 'iter_4.pth')) == 4
    assert logged_iters(work_dir) == [[1, 2, 3, 4]]

"""End to end: tools/train.py, resume, tools/test.py on a tiny generated synthetic set.

The tools run as subprocesses (as a user runs them), on configs/lpd_synth_cpu.py with tiny
overrides: a few iterations of batch 2, the loss warm-up ending inside the run (so the refiner
and the diversity loss are trained too). The training run starts from the preset's pretrained MiT
(pretrained for 2 iterations into its own cache); the others from random weights.
"""
import json
import os
import os.path as osp
import shutil
import sys

import pytest
import torch
from helpers import (CONFIG, TINY_BACKBONE_PRETRAIN, TINY_OPTIONS, TINY_SCHEDULE, checkpoint_iter,
                     load_tool, logged_iters, run)


@pytest.fixture(scope='module')
def trained(tiny_data, tmp_path_factory):
    """Work dir of a 4-iteration training run from the preset's pretrained MiT (2 iterations
    of backbone pretraining, cached in ``<work dir>/cache``)."""
    work_dir = str(tmp_path_factory.mktemp('train'))
    run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work_dir, '--cfg-options',
         f'data_root={tiny_data}', *TINY_SCHEDULE, *TINY_BACKBONE_PRETRAIN],
        env={'LPD_BENCH_CACHE': osp.join(work_dir, 'cache')})
    return work_dir


@pytest.mark.slow
def test_train_starts_from_the_pretrained_backbone(trained):
    from lpd_bench.models.backbone_pretraining import CACHE_SUBDIR
    from lpd_bench.models.encoder_pretraining import read_pretrained
    cached = sorted(os.listdir(osp.join(trained, 'cache', CACHE_SUBDIR)))
    assert len(cached) == 2 and cached[0].startswith('mixvisiontransformer-BCSS-WSSS-it2-seed0-')
    path = osp.join(trained, 'cache', CACHE_SUBDIR, cached[0])
    assert read_pretrained(path)['meta']['key']['settings']['iters'] == 2
    logs = [osp.join(trained, d, f'{d}.log') for d in os.listdir(trained)
            if osp.isfile(osp.join(trained, d, f'{d}.log'))]
    log = open(logs[0]).read()
    assert 'backbone pretraining: 8 train images of' in log
    assert f'load the synthetic-pretrained backbone from: {path}' in log


@pytest.mark.slow
def test_train_runs_and_checkpoints(trained):
    with open(osp.join(trained, 'last_checkpoint')) as f:
        last = f.read().strip()
    assert osp.basename(last) == 'iter_4.pth'
    assert checkpoint_iter(last) == 4
    assert logged_iters(trained) == [[1, 2, 3, 4]]
    with open(osp.join(trained, 'cost_train.json')) as f:
        assert json.load(f)['totals']['iters'] == 4


@pytest.mark.slow
def test_resume_continues_at_the_checkpoint_iteration(trained, tiny_data, tmp_path):
    work_dir = str(tmp_path / 'resumed')
    os.makedirs(work_dir)
    # resume from a copy, so that the train fixture stays as it was for the other tests
    shutil.copy(osp.join(trained, 'iter_4.pth'), work_dir)
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work_dir, 'iter_4.pth'))
    run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work_dir, '--resume',
         '--cfg-options', f'data_root={tiny_data}', *TINY_OPTIONS, 'train_cfg.max_iters=6'])
    assert logged_iters(work_dir) == [[5, 6]]
    assert checkpoint_iter(osp.join(work_dir, 'iter_6.pth')) == 6


@pytest.mark.slow
def test_test_tool_writes_the_metric_json(trained, tiny_data, tmp_path):
    out = tmp_path / 'metrics.json'
    run([sys.executable, 'tools/test.py', CONFIG, osp.join(trained, 'iter_4.pth'),
         '--work-dir', str(tmp_path / 'test'), '--out', str(out), '--cfg-options',
         f'data_root={tiny_data}', *TINY_OPTIONS])
    metrics = json.loads(out.read_text())
    assert metrics['classes'] == ['TUM', 'STR', 'LYM', 'NEC', 'BG']
    for gating in ('oracle', 'predicted'):
        block = metrics['results'][gating]['bg_counted']
        assert 0.0 <= block['mIoU'] <= 100.0
        confusion = block['confusion']
        # every pixel of the 4 test masks (64 x 64) is counted once: predictions at full size
        assert sum(map(sum, confusion)) == 4 * 64 * 64


def test_train_stops_on_bad_data_with_the_problem_list(tmp_path, capsys):
    train = load_tool('train')
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(SystemExit) as err:
        train.main([CONFIG, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                    f'data_root={empty}'])
    message = str(err.value)
    assert 'dataset check failed' in message and str(empty) in message
    assert '--skip-data-check' in message


def test_amp_flag_needs_cuda(tiny_data, tmp_path):
    if torch.cuda.is_available():
        pytest.skip('CUDA present: --amp is valid')
    train = load_tool('train')
    with pytest.raises(SystemExit, match='--amp needs a CUDA device'):
        train.main([CONFIG, '--amp', '--work-dir', str(tmp_path), '--cfg-options',
                    f'data_root={tiny_data}'])

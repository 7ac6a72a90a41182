"""CostRecorderHook on the toy Runner: train, resumed train (segments) and test cost files."""
import json
import os

import pytest
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from helpers import BATCH, ToyDataset, toy_runner

from lpd_bench.engine.hooks import CostRecorderHook, totals
from mmseg.registry import HOOKS

COST = dict(type='CostRecorderHook')
TOY_PARAMS, TOY_TRAINABLE = 6, 3  # two Linear(2, 1), one frozen


def read(path):
    return json.loads(path.read_text())


def check_segment(segment, start_iter, iters):
    assert segment['start_iter'] == start_iter and segment['end_iter'] == start_iter + iters
    assert segment['iters'] == iters and segment['images'] == iters * BATCH
    assert segment['wall_s'] > 0
    assert segment['images_per_s'] == pytest.approx(segment['images'] / segment['wall_s'])
    assert segment['peak_rss_mb'] > 10 and segment['peak_cuda_mb'] is None
    assert segment['complete'] is True


def test_registered_in_mmseg_scope():
    assert HOOKS.get('CostRecorderHook') is CostRecorderHook
    assert MMENGINE_HOOKS.get('CostRecorderHook') is None  # mmseg's registry, not the root


def test_training_cost_and_resumed_segment(tmp_path):
    toy_runner(tmp_path, max_iters=2, custom_hooks=[COST]).train()
    first = read(tmp_path / 'cost_train.json')
    assert first['stage'] == 'train' and first['device'] == 'cpu' and first['world_size'] == 1
    assert (first['params'], first['trainable_params']) == (TOY_PARAMS, TOY_TRAINABLE)
    check_segment(first['segments'][0], 0, 2)

    toy_runner(tmp_path, max_iters=6, custom_hooks=[COST], resume=True).train()  # auto-resume
    second = read(tmp_path / 'cost_train.json')
    assert second['segments'][0] == first['segments'][0]  # the earlier time is kept
    check_segment(second['segments'][1], 2, 4)
    assert second['totals']['iters'] == 6 and second['totals']['images'] == 6 * BATCH
    assert second['totals']['wall_s'] == pytest.approx(sum(s['wall_s'] for s in second['segments']))
    assert not [name for name in os.listdir(tmp_path) if name.endswith('.tmp')]

    toy_runner(tmp_path, max_iters=2, custom_hooks=[COST]).train()  # from scratch: new file
    assert len(read(tmp_path / 'cost_train.json')['segments']) == 1


def test_test_cost(tmp_path):
    toy_runner(tmp_path, custom_hooks=[COST]).test()
    cost = read(tmp_path / 'cost_test.json')
    assert cost['stage'] == 'test'
    check_segment(cost['segments'][0], 0, len(ToyDataset()) // BATCH)
    assert cost['totals']['images'] == len(ToyDataset())
    assert not (tmp_path / 'cost_train.json').exists()


def test_totals_sum_time_and_take_peak_memory():
    segments = [dict(iters=2, images=4, wall_s=1.0, peak_rss_mb=100.0, peak_cuda_mb=None),
                dict(iters=3, images=6, wall_s=4.0, peak_rss_mb=80.0, peak_cuda_mb=50.0)]
    assert totals(segments) == dict(iters=5, images=10, wall_s=5.0, images_per_s=2.0,
                                    peak_rss_mb=100.0, peak_cuda_mb=50.0)


def test_unreadable_cost_file_is_a_clear_error(tmp_path):
    toy_runner(tmp_path, max_iters=2).train()  # a checkpoint to resume from, no cost file
    (tmp_path / 'cost_train.json').write_text('{"not": "a cost file"}')
    with pytest.raises(ValueError, match=r'cost_train\.json: not a cost file'):
        toy_runner(tmp_path, max_iters=4, custom_hooks=[COST], resume=True).train()

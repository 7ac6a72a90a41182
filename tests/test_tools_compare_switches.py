"""tools/compare_test_switches.py: argument checks and the difference table."""
import importlib.util
import os.path as osp

import pytest

SCRIPT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools',
                  'compare_test_switches.py')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('compare_test_switches', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def metrics(oracle, oracle_crf):
    return {'results': {'oracle': {'bg_counted': {'mIoU': oracle}},
                        'oracle_crf': {'bg_counted': {'mIoU': oracle_crf}}}}


def test_table_shows_each_row_against_the_first(tool):
    rows = [{'name': 'config as is', 'options': [], 'wall_s': 10.0, 'metrics': metrics(70.0, 71.0)},
            {'name': 'per-image', 'options': ['model.test_cfg.map_merge=per_image'],
             'wall_s': 12.5, 'metrics': metrics(68.5, 71.25)}]
    lines = tool.table(rows, 'bg_counted').splitlines()
    assert lines[0] == '| switch | cfg-options | oracle mIoU | oracle_crf mIoU | test wall (s) |'
    assert lines[2] == '| config as is | (config as is) | 70.00 | 71.00 | 10.0 |'
    assert lines[3] == ('| per-image | `model.test_cfg.map_merge=per_image` | 68.50 (-1.50) | '
                        '71.25 (+0.25) | 12.5 |')


def test_a_switch_needs_key_value_options(tool):
    with pytest.raises(SystemExit):
        tool.parse_args(['c.py', 'x.pth', '--out', 'o.md', '--switch', 'name', 'no-equals'])
    args = tool.parse_args(['c.py', 'x.pth', '--out', 'o.md', '--switch', 'n', 'a.b=1', 'c=2'])
    assert args.switch == [['n', 'a.b=1', 'c=2']]
    assert tool.slug('Per-image map merge!') == 'per_image_map_merge'

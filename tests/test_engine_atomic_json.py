"""One atomic writer (lpd_bench.engine.atomic_json) and one environment record (runner.environment)."""
import json
import os

import pytest
import torch

from lpd_bench.engine.atomic_json import atomic_file, write_json_atomic, write_text_atomic
from lpd_bench.runner.environment import bench_environment, environment


def test_writers_replace_the_file_and_leave_no_temp_file(tmp_path):
    path = tmp_path / 'sub' / 'a.json'
    write_json_atomic(path, {'x': 1})
    write_json_atomic(path, {'x': 2})
    assert json.loads(path.read_text()) == {'x': 2}
    write_text_atomic(tmp_path / 'a.md', 'line\n')
    assert (tmp_path / 'a.md').read_text() == 'line\n'
    with atomic_file(tmp_path / 'a.pth', 'wb') as f:
        torch.save({'t': torch.ones(2)}, f)
    assert torch.equal(torch.load(tmp_path / 'a.pth', weights_only=True)['t'], torch.ones(2))
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
    assert sorted(p.name for p in tmp_path.rglob('*') if p.name.startswith('.')) == []


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / 'a.json'
    write_json_atomic(path, {'x': 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {'x': float('nan')})  # not valid JSON: refused mid-write
    assert json.loads(path.read_text()) == {'x': 1}
    assert [p.name for p in tmp_path.iterdir()] == ['a.json']


def test_environment_records_share_the_commit_and_versions(tmp_path, monkeypatch):
    monkeypatch.setenv('LPD_GIT_COMMIT', 'abc1234')
    run_env = environment(tmp_path)
    bench_env = bench_environment(tmp_path, command='lpd-bench bench')
    assert run_env['git_commit'] == 'abc1234' and bench_env['git commit'] == 'abc1234'
    assert f"torch {run_env['packages']['torch']}" in bench_env['versions']
    assert bench_env['command'] == '`lpd-bench bench`' and bench_env['device'] == 'cpu'
    monkeypatch.delenv('LPD_GIT_COMMIT')
    assert environment(tmp_path)['git_commit'] is None  # not a checkout


def test_json_layout_keeps_arrays_of_numbers_on_one_line(tmp_path):
    from lpd_bench.engine.atomic_json import json_text
    obj = {'per_image': {'names': ['a.png', 'b.png'], 'confusion': {'oracle': [[[1, 2], [3, 4]]]}},
           'scores': {'mIoU': 71.5, 'empty': [], 'none': None}, 'path': tmp_path}
    text = json_text(obj)
    assert '[[[1,2],[3,4]]]' in text and '"a.png",\n' in text
    write_json_atomic(tmp_path / 'x.json', obj)
    assert json.loads((tmp_path / 'x.json').read_text()) == {**obj, 'path': str(tmp_path)}
    with pytest.raises(ValueError):
        json_text({'bad': float('nan')})

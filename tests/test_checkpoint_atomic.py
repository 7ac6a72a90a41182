"""A kill at any moment loses at most one checkpoint interval (issue 14, item 5).

Writing: ``AtomicCheckpointHook`` (the base of the project's ``DelayedBestCheckpointHook``) on a
toy Runner: files arrive complete or not at all, a failed save leaves the previous checkpoint and
the pointer as they were, a SIGKILL mid-training leaves a resumable checkpoint.
Reading: ``find_resume_checkpoint`` / ``prepare_resume`` (what ``tools/train.py --resume`` and
``lpd_bench.runner.results.last_checkpoint`` use) on real MMEngine checkpoints: truncated, deleted
and empty files, stale, empty, relative and absent pointers; then MMEngine's own resume. One end
to end test resumes ``tools/train.py`` past a truncated checkpoint.
"""
import contextlib
import errno
import itertools
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from helpers import BATCH, CONFIG, REPO, TINY_OPTIONS, ToyDataset, ToyModel, logged_iters, run

from lpd_bench.engine import DelayedBestCheckpointHook, checkpoint_files
from lpd_bench.engine.atomic_checkpoint import AtomicCheckpointHook
from lpd_bench.engine.checkpoint_files import (ATOMIC_BACKEND, POINTER, checkpoint_problem,
                                               find_resume_checkpoint, prepare_resume,
                                               remove_stale_temp_files)
from lpd_bench.runner.results import last_checkpoint

_RUNS = itertools.count()


class StartIter(Hook):
    """Records the iteration training starts at (after a resume)."""

    def __init__(self):
        self.start = None

    def before_train(self, runner):
        self.start = runner.iter


def toy_runner(work_dir, max_iters=4, interval=2, max_keep_ckpts=-1, resume=False,
               custom_hooks=(), **hook_kwargs):
    """A Runner on helpers' ToyModel checkpointing through AtomicCheckpointHook."""
    loader = dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler', shuffle=False),
                  batch_size=BATCH, num_workers=0)
    return Runner(
        model=ToyModel(), work_dir=str(work_dir), experiment_name=f'atomic_{next(_RUNS)}',
        default_scope='mmseg', train_dataloader=loader,
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=4)],
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(
            type='AtomicCheckpointHook', interval=interval, by_epoch=False,
            max_keep_ckpts=max_keep_ckpts, **hook_kwargs)),
        custom_hooks=list(custom_hooks), randomness=dict(seed=0), resume=resume)


def checkpoint_hook(runner):
    return next(h for h in runner.hooks if isinstance(h, AtomicCheckpointHook))


def truncate(path, keep=0.5):
    """Cut ``path`` to ``keep`` of its length (a fraction) or ``keep`` bytes (an int)."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:keep if isinstance(keep, int) else int(len(data) * keep)])


def pointer(work_dir) -> str:
    return (Path(work_dir) / POINTER).read_text().strip()


def saved_iter(path) -> int:
    return torch.load(path, map_location='cpu', weights_only=True)['meta']['iter']


def temp_files(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith('.tmp'))


def resume_like_train_tool(work_dir, max_iters=6):
    """What tools/train.py --resume does: prepare_resume on the config, then the Runner with
    the resulting ``resume``; returns (log lines, training start iteration, runner)."""
    cfg = Config(dict(work_dir=str(work_dir), resume=True, load_from=None))
    lines = prepare_resume(cfg)
    start = StartIter()
    runner = toy_runner(work_dir, max_iters=max_iters, resume=cfg.resume, custom_hooks=[start])
    runner.train()
    return lines, start.start, runner


@pytest.fixture
def two(tmp_path):
    """A work dir of a 4-iteration toy training: iter_2.pth, iter_4.pth, pointer -> iter_4."""
    toy_runner(tmp_path, max_iters=4).train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_2.pth', 'iter_4.pth']
    assert pointer(tmp_path) == str(tmp_path / 'iter_4.pth')
    return tmp_path


# ------------------------------------------------------------------------------------ writing

def test_the_project_checkpoint_hook_writes_atomically():
    assert issubclass(DelayedBestCheckpointHook, AtomicCheckpointHook)
    assert DelayedBestCheckpointHook(interval=2).backend_args == dict(backend=ATOMIC_BACKEND)
    runtime = Config.fromfile(str(REPO / 'configs' / '_base_' / 'default_runtime.py'))
    assert runtime.default_hooks.checkpoint.type == 'DelayedBestCheckpointHook'
    # a remote out_dir or the user's own backend keeps MMEngine's writer
    assert AtomicCheckpointHook(interval=2, out_dir='s3://bucket/x').backend_args is None
    assert AtomicCheckpointHook(interval=2, backend_args=dict(backend='local')).backend_args == \
        dict(backend='local')


def test_training_keeps_the_newest_checkpoint_and_a_pointer_to_it(tmp_path):
    runner = toy_runner(tmp_path, max_iters=6, max_keep_ckpts=1)
    runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_6.pth']
    assert pointer(tmp_path) == str(tmp_path / 'iter_6.pth')
    assert checkpoint_problem(tmp_path / 'iter_6.pth', verify_data=True) is None
    assert saved_iter(tmp_path / 'iter_6.pth') == 6
    assert torch.load(tmp_path / 'iter_6.pth', weights_only=True)['message_hub'][
        'runtime_info']['keep_ckpt_ids'] == [6]  # MMEngine's bookkeeping, unchanged
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize('interruption', [OSError(errno.ENOSPC, 'No space left on device'),
                                          KeyboardInterrupt()], ids=['full disk', 'interrupt'])
def test_a_save_interrupted_mid_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch,
                                                                    interruption):
    toy_runner(tmp_path, max_iters=2, max_keep_ckpts=1).train()
    before = (tmp_path / 'iter_2.pth').read_bytes()
    real_atomic_file = checkpoint_files.atomic_file

    class HalfWritten:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            raise interruption

    @contextlib.contextmanager
    def interrupted(path, mode='w', **kwargs):
        with real_atomic_file(path, mode, **kwargs) as f:
            yield HalfWritten(f)

    monkeypatch.setattr(checkpoint_files, 'atomic_file', interrupted)
    with pytest.raises(type(interruption)):
        toy_runner(tmp_path, max_iters=4, max_keep_ckpts=1, resume=True).train()
    assert not (tmp_path / 'iter_4.pth').exists()  # nothing under the final name
    assert temp_files(tmp_path) == []  # the half-written temp file is gone
    # max_keep_ckpts=1 drops iter_2.pth only once iter_4.pth is on disk (MMEngine: before)
    assert (tmp_path / 'iter_2.pth').read_bytes() == before
    assert pointer(tmp_path) == str(tmp_path / 'iter_2.pth')

    monkeypatch.undo()
    toy_runner(tmp_path, max_iters=4, max_keep_ckpts=1, resume=True).train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_4.pth']
    assert saved_iter(tmp_path / 'iter_4.pth') == 4


def test_the_previous_best_checkpoint_is_deleted_after_the_new_one_is_saved(tmp_path,
                                                                           monkeypatch):
    runner = toy_runner(tmp_path, max_iters=2, max_keep_ckpts=1, save_best='mean',
                        rule='greater')
    runner.train()
    hook = checkpoint_hook(runner)
    hook._save_best_checkpoint(runner, {'mean': 1.0})
    first = tmp_path / 'best_mean_iter_2.pth'
    assert hook.best_ckpt_path == str(first) and checkpoint_problem(first, True) is None

    runner.train_loop._iter = 4  # a later validation
    with monkeypatch.context() as patch:
        def full_disk(*args, **kwargs):
            raise OSError(errno.ENOSPC, 'No space left on device')
        patch.setattr(runner, 'save_checkpoint', full_disk)
        with pytest.raises(OSError):
            hook._save_best_checkpoint(runner, {'mean': 2.0})
    assert first.is_file()  # MMEngine deleted it before saving the new one

    hook.best_ckpt_path = str(first)
    hook._save_best_checkpoint(runner, {'mean': 3.0})
    assert sorted(p.name for p in tmp_path.glob('best_*.pth')) == ['best_mean_iter_4.pth']
    assert hook.best_ckpt_path == str(tmp_path / 'best_mean_iter_4.pth')
    assert checkpoint_problem(tmp_path / 'best_mean_iter_4.pth', verify_data=True) is None
    assert temp_files(tmp_path) == []


KILLED_TRAINING = '''
import sys
sys.path.insert(0, {tests!r})
import test_checkpoint_atomic as t
t.toy_runner({work!r}, max_iters=10 ** 6, interval=1, max_keep_ckpts=1).train()
'''


@pytest.mark.slow  # a fresh process imports lpd_bench: 10-30 s
def test_sigkill_mid_training_leaves_a_resumable_checkpoint(tmp_path):
    """SIGKILL a training that checkpoints every iteration: the pointer names a good checkpoint
    (no truncated file anywhere) and training resumes from it."""
    script = KILLED_TRAINING.format(tests=str(REPO / 'tests'), work=str(tmp_path))
    proc = subprocess.Popen([sys.executable, '-c', script], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            text = (tmp_path / POINTER).read_text() if (tmp_path / POINTER).is_file() else ''
            if text and int(Path(text).stem.split("_")[1]) >= 6:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        time.sleep(0.137)  # somewhere in the middle of an iteration or a save
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    point = find_resume_checkpoint(tmp_path, verify_data=True, repair=False)
    assert point.checkpoint is not None and point.problems == []
    assert point.checkpoint == Path(pointer(tmp_path))
    for path in tmp_path.glob('iter_*.pth'):  # no truncated file under a final name
        assert checkpoint_problem(path, verify_data=True) is None
    reached = saved_iter(point.checkpoint)
    remove_stale_temp_files(tmp_path)
    lines, start, _ = resume_like_train_tool(tmp_path, max_iters=reached + 2)
    assert start == reached and lines == []
    assert saved_iter(Path(pointer(tmp_path))) == reached + 2


# ---------------------------------------------------------------------------------- resuming

def break_work_dir(work_dir, case):
    if case == 'truncated newest':
        truncate(work_dir / 'iter_4.pth')
    elif case == 'empty newest':
        truncate(work_dir / 'iter_4.pth', 0)
    elif case == 'newest deleted':
        (work_dir / 'iter_4.pth').unlink()
    elif case == 'stale pointer':  # names a checkpoint that was never written
        (work_dir / POINTER).write_text(str(work_dir / 'iter_8.pth'))
    elif case == 'moved run dir':  # the pointer's absolute path is elsewhere
        (work_dir / POINTER).write_text('/no/longer/here/iter_4.pth')
    elif case == 'empty pointer':
        (work_dir / POINTER).write_text('')
    elif case == 'no pointer':
        (work_dir / POINTER).unlink()
    elif case == 'relative pointer':
        (work_dir / POINTER).write_text('iter_4.pth')


@pytest.mark.parametrize('case, taken, bad, problem', [
    ('truncated newest', 'iter_2.pth', 'iter_4.pth', 'truncated: no zip end-of-central-directory'),
    ('empty newest', 'iter_2.pth', 'iter_4.pth', 'empty (0 bytes)'),
    ('newest deleted', 'iter_2.pth', 'iter_4.pth', 'missing (no such file)'),
    ('stale pointer', 'iter_4.pth', 'iter_8.pth', 'missing (no such file)'),
    ('moved run dir', 'iter_4.pth', '/no/longer/here/iter_4.pth', 'missing (no such file)'),
    ('empty pointer', 'iter_4.pth', None, None),
    ('no pointer', 'iter_4.pth', None, None),
    ('relative pointer', 'iter_4.pth', None, None),
])
def test_resume_takes_the_newest_good_checkpoint_and_names_the_bad_one(two, case, taken, bad,
                                                                       problem):
    break_work_dir(two, case)
    if case == 'truncated newest':  # what every resume died of before
        with pytest.raises(RuntimeError, match='central directory'):
            torch.load(two / 'iter_4.pth', weights_only=True)
    files_before = sorted(p.name for p in two.iterdir() if p.name != POINTER)
    broken = (two / POINTER).read_text() if (two / POINTER).exists() else None

    assert last_checkpoint(two) == two / taken  # the runner's view: same choice, pointer repaired
    assert pointer(two) == str(two / taken)
    if broken is None:  # as it was, for the train tool to find
        (two / POINTER).unlink()
    else:
        (two / POINTER).write_text(broken)
    lines, start, _ = resume_like_train_tool(two)
    text = '\n'.join(lines)
    if bad is not None:
        bad_path = bad if bad.startswith('/') else str(two / bad)
        assert f'Checkpoint {bad_path} cannot be resumed from: {problem}' in text
        assert f'Resuming from {two / taken}, the newest good checkpoint' in text
    if case == 'empty pointer':
        assert f'{two / POINTER} is empty' in text
    assert start == int(taken[5:-4])
    assert sorted(p.name for p in two.iterdir() if p.name != POINTER and
                  p.name in files_before) == files_before  # nothing deleted
    assert pointer(two) == str(two / 'iter_6.pth') and saved_iter(two / 'iter_6.pth') == 6
    assert checkpoint_problem(two / 'iter_4.pth', verify_data=True) is None  # written again


def test_no_good_checkpoint_restarts_the_stage_from_scratch(two):
    truncate(two / 'iter_4.pth', 0.9)
    truncate(two / 'iter_2.pth', 0)
    assert last_checkpoint(two) is None
    assert pointer(two) == str(two / 'iter_4.pth')  # left alone
    cfg = Config(dict(work_dir=str(two), resume=True, load_from=None))
    lines = prepare_resume(cfg)
    assert cfg.resume is False
    text = '\n'.join(lines)
    assert f'Checkpoint {two / "iter_4.pth"} cannot be resumed from: truncated' in text
    assert f'Checkpoint {two / "iter_2.pth"} cannot be resumed from: empty (0 bytes)' in text
    assert 'the stage restarts from scratch (no file is deleted)' in text
    assert (two / 'iter_2.pth').stat().st_size == 0  # nothing deleted or touched
    start = StartIter()
    toy_runner(two, max_iters=4, resume=cfg.resume, custom_hooks=[start]).train()
    assert start.start == 0
    assert [saved_iter(two / f'iter_{i}.pth') for i in (2, 4)] == [2, 4]


def test_only_checkpoints_not_newer_than_the_bad_one_are_taken(two):
    """A good iter_6.pth of an earlier, longer run in the same folder is not this run's."""
    (two / 'iter_6.pth').write_bytes((two / 'iter_4.pth').read_bytes())
    truncate(two / 'iter_4.pth')
    point = find_resume_checkpoint(two)
    assert point.checkpoint == two / 'iter_2.pth'
    assert [p.name for p, _ in point.problems] == ['iter_4.pth']


def test_bad_files_newer_than_the_pointer_are_reported(two):
    """The runner repaired the pointer already: the train tool still names the bad file."""
    truncate(two / 'iter_4.pth')
    last_checkpoint(two)
    point = find_resume_checkpoint(two, verify_data=True)
    assert point.checkpoint == two / 'iter_2.pth' and not point.repaired
    assert [p.name for p, _ in point.problems] == ['iter_4.pth']
    assert any('iter_4.pth cannot be resumed from: truncated' in m for m in point.messages())


def test_without_resume_bad_checkpoints_are_only_reported(two):
    truncate(two / 'iter_4.pth')
    cfg = Config(dict(work_dir=str(two), resume=False, load_from=None))
    lines = prepare_resume(cfg)
    assert cfg.resume is False and pointer(two) == str(two / 'iter_4.pth')
    assert any('iter_4.pth in the work dir is unusable (truncated' in line for line in lines)


def test_a_bad_load_from_is_an_error(two):
    truncate(two / 'iter_4.pth')
    cfg = Config(dict(work_dir=str(two), resume=True, load_from=str(two / 'iter_4.pth')))
    with pytest.raises(SystemExit, match='iter_4.pth.*truncated'):
        prepare_resume(cfg)


# ------------------------------------------------------------------------------------ checks

@pytest.mark.parametrize('keep', [1, 0.1, 0.5, 0.99, -1, -22], ids=str)
def test_every_truncation_is_found_by_the_quick_check(two, keep):
    path = two / 'iter_4.pth'
    size = path.stat().st_size
    truncate(path, keep if isinstance(keep, float) else keep % size)
    assert checkpoint_problem(path) is not None


def test_a_corrupt_record_is_found_by_the_full_check(two):
    path = two / 'iter_4.pth'
    with zipfile.ZipFile(path) as archive:
        record = max((info for info in archive.infolist() if '/data/' in info.filename),
                     key=lambda info: info.file_size)  # a tensor's storage
    with open(path, 'rb') as f:
        f.seek(record.header_offset)
        name_len, extra_len = struct.unpack('<HH', f.read(30)[26:30])
    data = bytearray(path.read_bytes())
    data[record.header_offset + 30 + name_len + extra_len] ^= 0xFF
    path.write_bytes(bytes(data))
    assert checkpoint_problem(path) is None  # the quick check reads only data.pkl
    assert 'fails its CRC check' in checkpoint_problem(path, verify_data=True)
    assert find_resume_checkpoint(two, verify_data=True).checkpoint == two / 'iter_2.pth'


def test_files_in_another_format_pass_only_the_quick_check(tmp_path):
    path = tmp_path / 'iter_3.pth'
    path.write_text('3')  # e.g. the runner tests' fake training
    assert checkpoint_problem(path) is None
    assert 'not a zip archive' in checkpoint_problem(path, verify_data=True)


def test_temp_files_of_killed_writes_are_removed_on_start(two):
    names = ['.iter_6.pth.a1b2.tmp', '.best_mIoU_iter_4.pth.x.tmp', '.last_checkpoint.q.tmp',
             'notes.tmp']
    for name in names:
        (two / name).write_bytes(b'PK\x03\x04half')
    cfg = Config(dict(work_dir=str(two), resume=True, load_from=None))
    lines = prepare_resume(cfg)
    assert temp_files(two) == ['.last_checkpoint.q.tmp', 'notes.tmp']
    assert lines == ['Removed temp files of interrupted checkpoint writes: '
                     '.best_mIoU_iter_4.pth.x.tmp, .iter_6.pth.a1b2.tmp.']
    assert cfg.resume is True and pointer(two) == str(two / 'iter_4.pth')


# ------------------------------------------------------------------------------- end to end

@pytest.mark.slow
def test_train_tool_resumes_past_a_truncated_checkpoint(tiny_data, tmp_path):
    """tools/train.py on the tiny synthetic set, its newest checkpoint cut in half (a kill or a
    full disk during MMEngine's torch.save did that): --resume resumes from the one before."""
    work = tmp_path / 'work'
    options = ['--cfg-options', f'data_root={tiny_data}', *TINY_OPTIONS,
               'default_hooks.checkpoint.max_keep_ckpts=2']
    run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work), *options])
    assert sorted(p.name for p in work.glob('iter_*.pth')) == ['iter_2.pth', 'iter_4.pth']
    truncate(work / 'iter_4.pth')

    proc = run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work), '--resume',
                *options, 'train_cfg.max_iters=6'])
    output = proc.stdout + proc.stderr
    assert (f'Checkpoint {work / "iter_4.pth"} cannot be resumed from: truncated: no zip '
            'end-of-central-directory record') in output
    assert f'Resuming from {work / "iter_2.pth"}, the newest good checkpoint' in output
    assert 'failed finding central directory' not in output.replace(
        'torch: "failed finding central directory"', '')
    assert logged_iters(work) == [[1, 2, 3, 4], [3, 4, 5, 6]]
    assert pointer(work) == str(work / 'iter_6.pth')
    assert sorted(p.name for p in work.glob('iter_*.pth')) == ['iter_4.pth', 'iter_6.pth']
    for name, it in (('iter_4.pth', 4), ('iter_6.pth', 6)):
        assert checkpoint_problem(work / name, verify_data=True) is None
        assert saved_iter(work / name) == it
    assert temp_files(work) == []

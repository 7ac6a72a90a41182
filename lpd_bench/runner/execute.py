"""Executes a run plan: each run is MMEngine training then testing, each in a subprocess.

Per run (``<work_dir>/runs/<run_id>/``), the stages of its method's spec
(:class:`lpd_bench.methods.MethodSpec`): first its pre-stages (e.g. PBIP's prototype bank; each
output is built once per key under ``<work_dir>/<stage folder>/`` and shared by the runs with that
key), then ``tools/train.py`` (with ``--resume`` when a checkpoint exists; a method with a
``checkpoint_stage`` is not trained: that pre-stage's output is its checkpoint), then ``tools/test.py``
on the last checkpoint (stage ``test``, ``test_metrics.json``) and on the best-on-val checkpoint
when training saved one (stage ``test_best``, ``test_metrics_best.json``; when it is of the last
iteration, the last checkpoint's metrics are reused instead, recorded as ``reused_from='test'``),
then its post-stages on the last checkpoint, then ``result.json`` is written atomically as the
very last step. The training process tests the model it has trained itself (``tools/train.py
--test-after``: stage ``test`` is then done, with its own time; no second process start, model
build and checkpoint load); a separate test process only runs when training was done before. A
post-stage with an ``in_test`` function and the snapshots run inside the testing process, after
the test, on the model it tested (``tools/test.py --after-test``,
:mod:`lpd_bench.engine.after_test`: no second process start and model build); only when the
test was already done, or that task failed, do they run as their own processes. Every finished stage leaves a
``stage_<name>.json`` marker so that a rerun skips it. The subprocess output goes to ``run.log``.
A failed stage writes ``failed.json`` (with the log tail) and the plan goes on.

Runs are executed ``jobs`` at a time by a thread pool (a run's stages stay sequential); each stage
subprocess gets ``cpu cores // jobs`` intra-op threads (``OMP_NUM_THREADS``, unless the user set
it), since tiny models on oversubscribed cores run far slower. A shared pre-stage output is built by
the first run that needs it while the others wait. The pretrained weights the configs share (the
CPU preset's backbone, a pretrained refiner encoder) are built before the runs start, in this
process with all its threads (:mod:`.shared_weights`). SIGINT/SIGTERM kill every running stage's
process group and stop the plan (:class:`PlanInterrupted`); unfinished runs stay resumable.
"""
import ctypes
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.after_test import done_file, read_outcomes, write_task_file
from ..engine.train_then_test import read_timing
from ..methods import DEFAULT_DATASET, MARKER_SUFFIX
from ..stage2.mask_folder import MANIFEST_NAME
from ..stage2.runs import MASK_DIR_OPTION, pseudo_mask_folders, pseudo_mask_summary
from .devices import DeviceSlots, device_memory_gb
from .environment import environment
from .plan import MAIN_GROUP
from .results import (FAILED_FILE, RESULT_FILE, SCHEMA, best_checkpoint, checkpoint_number,
                      last_checkpoint, load_result, read_json, stage_marker, stage_record,
                      valid_metrics, write_json_atomic, write_plan_wall)

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL_LINES = 30
METRICS_FILE = 'test_metrics.json'
BEST_METRICS_FILE = 'test_metrics_best.json'
#: Keys of stage records kept out of ``cost.stages`` (they are in ``checkpoints`` / metrics /
#: ``pseudo_masks``).
NOT_COST_KEYS = ('metrics_file', 'checkpoint', 'checkpoint_mtime_ns', 'best_checkpoint',
                 'manifests')
#: The pseudo-mask step of a stage-2 run (argv after the interpreter; then the stage-1 run dir).
PSEUDO_MASK_COMMAND = ('-m', 'lpd_bench.cli', 'pseudo-masks')
THREAD_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')
KILL_GRACE_S = 5.0  # after SIGTERM, stages still running this long later get SIGKILL
PR_SET_PDEATHSIG = 1
#: Task file of the work the test process does after testing (lpd_bench.engine.after_test).
AFTER_TEST_FILE = 'after_test.json'
#: The snapshot step as an after-test task.
SNAPSHOT_TASK = 'snapshots'
SNAPSHOT_FUNCTION = 'lpd_bench.runner.snapshots:snapshots_of_tested_model'


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0))


def resolve_jobs(jobs, num_runs) -> int:
    """Concurrent runs: ``jobs`` (None = one per available core), at most one per run."""
    return max(1, min(jobs or available_cores(), num_runs))


def stage_threads(jobs) -> int:
    """Intra-op threads of each stage: the user's OMP_NUM_THREADS, else cores // jobs."""
    user = os.environ.get('OMP_NUM_THREADS', '')
    return int(user) if user.isdigit() else max(1, available_cores() // jobs)


@dataclass
class Tools:
    """Commands of the stages (tests substitute fakes); paths are relative to ``cwd``.
    ``stages``: extra-stage name -> argv after the interpreter, instead of the spec's command."""
    python: str = sys.executable
    train: str = 'tools/train.py'
    test: str = 'tools/test.py'
    stages: dict = field(default_factory=dict)
    snapshot: list = field(default_factory=lambda: ['-m', 'lpd_bench.runner.snapshots'])
    cwd: Path = REPO_ROOT


class StageFailed(Exception):
    def __init__(self, stage, reason, log_path):
        super().__init__(f'{stage} failed: {reason}')
        self.stage, self.reason, self.log_path = stage, reason, Path(log_path)


class RunConflict(Exception):
    """``run_dir`` holds the result of another configuration (e.g. other --data)."""


class PlanInterrupted(Exception):
    """The plan was stopped by a signal; ``signum`` says which."""

    def __init__(self, signum):
        super().__init__(f'interrupted by {signal.Signals(signum).name}')
        self.signum = signum


class StageInterrupted(Exception):
    """A stage was not started or was killed because the plan is stopping."""


def _die_with_parent(libc=ctypes.CDLL(None, use_errno=True)):
    """In the forked child: get SIGKILL when the runner dies (even by SIGKILL itself)."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Children:
    """The running stage subprocesses, each in its own process group, killable all at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.procs = set()
        self.stopping = threading.Event()

    def spawn(self, cmd, **kwargs):
        with self.lock:
            if self.stopping.is_set():
                raise StageInterrupted('the plan is stopping')
            proc = subprocess.Popen(cmd, process_group=0, preexec_fn=_die_with_parent, **kwargs)
            self.procs.add(proc)
            return proc

    def reaped(self, proc):
        with self.lock:
            self.procs.discard(proc)

    def kill(self, sig):
        """Sends ``sig`` to the process group of every running stage (and stops new ones)."""
        with self.lock:
            self.stopping.set()
            for proc in self.procs:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass


def cfg_option_args(options: dict) -> list:
    """``key=value`` strings as MMEngine's DictAction parses them (None -> 'None')."""
    return [f'{key}={value}' for key, value in options.items()]


def log_tail(path, lines=LOG_TAIL_LINES) -> str:
    try:
        return ''.join(Path(path).read_text(errors='replace').splitlines(True)[-lines:])
    except OSError:
        return ''


def run_logged(cmd, cwd, log_path, on_line, children, env=None) -> dict:
    """Run ``cmd`` (spawned by ``children``, with ``env`` added to the environment), appending
    its output to ``log_path`` and feeding each line to ``on_line``.

    Returns the exit code, wall time and the child's peak resident memory (from wait4).
    """
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})}
    start = time.monotonic()
    with open(log_path, 'a') as log:
        log.write(f'\n$ {" ".join(map(str, cmd))}\n')
        log.flush()
        proc = children.spawn([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors='replace', bufsize=1)
        try:
            for line in proc.stdout:
                log.write(line)
                on_line(line)
        finally:
            proc.stdout.close()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            children.reaped(proc)
    return {'returncode': proc.returncode, 'wall_s': round(time.monotonic() - start, 3),
            'peak_rss_mb': round(usage.ru_maxrss / 1024, 1)}


def start_priority(index: int, spec) -> tuple:
    """Sort key of the runs ready to start (:meth:`Executor.schedule`): earliest seed, a stage-2
    run before a stage-1 run, a trained method's run before a reference's, then plan order
    (``index``)."""
    return spec.seed, spec.stage != 2, spec.spec.checkpoint_stage is not None, index


class Executor:
    """Runs plans into ``work_dir``, ``jobs`` runs at a time (None: one per available core);
    ``progress`` is a :class:`progress.Progress`."""

    def __init__(self, work_dir, progress, tools=None, snapshot_images=4, jobs=1, gpus=None,
                 gpu_memory_gb=None, run_memory_gb=None):
        self.work_dir = Path(work_dir)
        self.progress = progress
        self.tools = tools or Tools()
        self.snapshot_images = snapshot_images
        self.requested_jobs = jobs
        self.jobs = jobs or available_cores()  # resolved against the plan by run_plan
        self.gpus = list(gpus) if gpus else None  # CUDA indices (.devices); None: no placement
        self.gpu_memory_gb = gpu_memory_gb  # {index: GiB}; None: from the devices, if any
        self.run_memory_gb = run_memory_gb  # RunSpec -> peak GiB or None (unknown)
        self.threads = stage_threads(self.jobs)
        self.children = Children()
        self.output_locks = {}  # extra-stage output -> Lock: one run builds it, the others wait
        self.output_locks_lock = threading.Lock()
        self.signum = None
        self.local = threading.local()  # .device: the device of the pool thread's run

    def run_dir(self, spec) -> Path:
        return self.work_dir / 'runs' / spec.run_id

    def stage_env(self) -> dict:
        """Environment additions of every stage subprocess: the intra-op thread count, and
        ``CUDA_VISIBLE_DEVICES`` of the run's device when runs are placed on GPUs."""
        env = {}
        device = getattr(self.local, 'device', None)
        if device is not None:
            env['CUDA_VISIBLE_DEVICES'] = str(device)
        if not os.environ.get('OMP_NUM_THREADS'):
            env.update(dict.fromkeys(THREAD_VARS, str(self.threads)))
        return env

    def device_slots(self, plan) -> DeviceSlots:
        """The slots of this plan: ``jobs`` per GPU of ``gpus``, else ``jobs`` on no device."""
        if not self.gpus:
            return DeviceSlots([None], self.jobs)
        memory = self.gpu_memory_gb if self.gpu_memory_gb is not None else device_memory_gb(
            self.gpus)
        return DeviceSlots(self.gpus, self.jobs, memory)

    def run_plan(self, plan) -> dict:
        """Executes every run; returns {run_id: 'done' | 'skipped' | 'failed'}.

        Raises :class:`PlanInterrupted` after SIGINT/SIGTERM (running stages are killed).
        """
        if self.gpus:  # --jobs is per device: all of them at a time, however short the plan
            self.jobs = self.requested_jobs or 1
            jobs = self.jobs * len(self.gpus)
        else:
            self.jobs = jobs = resolve_jobs(self.requested_jobs, len(plan))
        self.threads = stage_threads(jobs)
        self.progress.jobs = jobs  # the plan's time left divides by the runs at a time
        first_seed = min((spec.seed for spec in plan), default=0)
        start = time.monotonic()
        prepared = self.prepare_shared_weights(plan)
        restore = self.install_signal_handlers()
        try:
            with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix='run') as pool:
                outcome = self.schedule(pool, plan, first_seed)
        finally:
            restore()
        if self.signum is not None:
            raise PlanInterrupted(self.signum)
        self.record_plan_wall(plan, outcome, time.monotonic() - start,
                              shared_weights_s=prepared['seconds'])
        return outcome

    def prepare_shared_weights(self, plan) -> dict:
        """Before the runs start: the cached pretrained weights the configs of the runs still to
        do ask for (the CPU preset's backbone, a pretrained refiner encoder) built once here with
        every thread of this process, instead of by the first run while the others wait on the
        lock (:mod:`.shared_weights`). Its record (``seconds``, ``built``, ``failed``)."""
        from .shared_weights import prepare_shared_weights
        todo = [(spec.config, spec.cfg_options) for spec in plan
                if spec.spec.checkpoint_stage is None and load_result(self.run_dir(spec)) is None]
        return prepare_shared_weights(todo, self.progress.message, cwd=self.tools.cwd)

    def record_plan_wall(self, plan, outcome, wall_s, shared_weights_s=0.0):
        """``plan_wall.json`` of this execution (:func:`.results.write_plan_wall`). ``wall_s``
        includes ``shared_weights_s``, the preparation of the shared pretrained weights before
        the runs (:meth:`prepare_shared_weights`; near 0 once cached)."""
        write_plan_wall(self.work_dir, plan, outcome, wall_s, self.jobs, self.threads,
                        shared_weights_s)

    def run_one(self, index, spec, first_seed, device=None) -> str:
        """One run of the plan (in a pool thread, on ``device``: its stages see only that
        GPU): its status, failures recorded and shown."""
        if self.children.stopping.is_set():
            return 'interrupted'
        self.local.device = device
        view = self.progress.start_run(index, spec.run_id)
        if device is not None:
            view.message(f'on GPU {device}')
        try:
            status = self.execute(spec, view, self.wants_snapshots(spec, first_seed))
        except (StageFailed, RunConflict) as err:
            status = 'failed'
            self.record_failure(spec, err, view)
        except StageInterrupted:
            status = 'interrupted'
        view.end_run(status, counted=status in ('done', 'failed'))
        return status

    def schedule(self, pool, plan, first_seed) -> dict:
        """Runs the plan on ``pool`` (``self.jobs`` at a time); returns {run_id: status}.

        A run starts once the run it depends on (``depends_on``: a stage-2 run's stage 1) has
        ended, whatever its outcome (a stage-2 run without its stage-1 result fails). Of the runs
        ready to start, the next is the one of the earliest seed, a stage-2 run before a stage-1
        run (the longer chain first), a trained method's run before a reference's (one with
        nothing to train, e.g. the colour rule: a short run, which fills the plan's last idle
        slot), then in plan order, placed on a device with a free slot
        where its memory fits (:mod:`.devices`; the first ready run that fits goes). Polls so that signal handlers run in
        the main thread; after a stop, no run starts, and stages still alive after a grace
        period are killed with SIGKILL."""
        planned = {spec.run_id for spec in plan}
        slots = self.device_slots(plan)
        waiting = list(enumerate(plan, 1))
        running, outcome, deadline = {}, {}, None
        while waiting or running:
            ready = sorted(((index, spec) for index, spec in waiting
                            if spec.depends_on is None or spec.depends_on not in planned
                            or spec.depends_on in outcome),
                           key=lambda pair: start_priority(*pair))
            for item in ready:
                if self.signum is not None or not slots.has_free_slot():
                    break
                need = self.run_memory_gb(item[1]) if self.run_memory_gb else None
                device = slots.place(item[1].run_id, need)
                if device is False:  # does not fit beside the running ones: a later one may
                    continue
                waiting.remove(item)
                running[pool.submit(self.run_one, *item, first_seed, device)] = item[1].run_id
            if self.signum is not None and not running:
                break
            finished, _ = wait(set(running), timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                run_id = running.pop(future)
                slots.release(run_id)
                outcome[run_id] = future.result()
            if self.signum is not None:
                deadline = deadline or time.monotonic() + KILL_GRACE_S
                if time.monotonic() > deadline:
                    self.children.kill(signal.SIGKILL)
        return {spec.run_id: outcome.get(spec.run_id, 'interrupted') for spec in plan}

    def install_signal_handlers(self):
        """SIGINT/SIGTERM stop the plan (main thread only); returns the restoring function."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def stop(signum, frame):
            if self.signum is None:
                self.progress.message(f'{signal.Signals(signum).name}: stopping the running '
                                      'stages; rerun the same command to resume')
            self.signum = signum
            self.children.kill(signal.SIGTERM)

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(sig, handler) for sig, handler in previous.items()]

    def wants_snapshots(self, spec, first_seed) -> bool:
        """Qualitative predictions are saved for the methods' default runs of the first seed."""
        return (self.snapshot_images > 0 and spec.seed == first_seed and spec.stage == 1
                and any(m['name'] == MAIN_GROUP for m in spec.memberships))

    def record_failure(self, spec, err, view):
        run_dir = self.run_dir(spec)
        run_dir.mkdir(parents=True, exist_ok=True)
        tail = log_tail(err.log_path) if isinstance(err, StageFailed) else ''
        write_json_atomic(run_dir / FAILED_FILE, {
            'run_id': spec.run_id, 'stage': getattr(err, 'stage', None), 'error': str(err),
            'log': str(getattr(err, 'log_path', '')), 'log_tail': tail,
            'time': datetime.datetime.now().isoformat(timespec='seconds')})
        view.message(f'FAILED {spec.run_id}: {err}\n--- last lines of '
                     f'{getattr(err, "log_path", "-")} ---\n{tail}---')

    def execute(self, spec, view, snapshots=False) -> str:
        run_dir = self.run_dir(spec)
        existing = load_result(run_dir)
        if existing is not None:
            self.check_same_config(spec, existing, run_dir)
            view.message(f'done already ({run_dir / RESULT_FILE})')
            return 'skipped'
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / FAILED_FILE).unlink(missing_ok=True)
        if spec.stage == 2:
            return self.execute_stage2(spec, run_dir, view)
        options = {**spec.cfg_options, 'randomness.seed': spec.seed}
        stages = []
        for pre_stage in [s for s in spec.spec.pre_stages if s.applies(spec)]:
            record = self.ensure_output(pre_stage, spec, view)
            if pre_stage.config_key is not None:
                options[pre_stage.config_key] = record['path']
            stages.append(record)
        post_stages = [s for s in spec.spec.post_stages if s.applies(spec)]
        tasks = self.after_test_tasks(spec, run_dir, post_stages, snapshots)
        fitted = {s['name']: s['path'] for s in stages}.get(spec.spec.checkpoint_stage)
        if fitted is not None:  # not trained: a pre-stage's output is the checkpoint
            checkpoints = {'last': fitted, 'best': None}
        else:  # training also tests, unless it is done already
            train = self.train(spec, options, run_dir, view, after_test=tasks)
            checkpoints = {'last': train['checkpoint'],
                           'best': train['best_checkpoint'] if 'best_checkpoint' in train
                           else _path_or_none(best_checkpoint(run_dir))}  # marker of older code
            stages.append(train)
        metrics = self.test_checkpoints(spec, options, run_dir, checkpoints, stages, view, tasks)
        done_in_test = read_outcomes(run_dir / AFTER_TEST_FILE)
        for post_stage in post_stages:
            stages.append(self.ensure_output(post_stage, spec, view, options=options,
                                             checkpoint=checkpoints['last'],
                                             done=done_in_test.get(post_stage.name)))
        if snapshots and not _succeeded(done_in_test.get(SNAPSHOT_TASK), run_dir.resolve()):
            self.snapshot(spec, options, run_dir, checkpoints['last'], view)
        result = self.assemble(spec, options, stages, metrics, checkpoints)
        write_json_atomic(run_dir / RESULT_FILE, result)
        return 'done'

    def test_checkpoints(self, spec, options, run_dir, checkpoints, stages, view,
                         after_test=()) -> dict:
        """Tests the last checkpoint (with the ``after_test`` tasks) and the best-on-val one
        when there is one; appends their records to ``stages``; returns their metrics
        ({'last', 'best'})."""
        test = self.test(spec, options, run_dir, checkpoints['last'], view, after_test=after_test)
        stages.append(test)
        metrics = {'last': read_json(test['metrics_file']), 'best': None}
        if checkpoints['best'] is not None:
            test_best = self.test_best(spec, options, run_dir, checkpoints, test, view)
            stages.append(test_best)
            metrics['best'] = read_json(test_best['metrics_file'])
        return metrics

    def execute_stage2(self, spec, run_dir, view) -> str:
        """A stage-2 run (:mod:`lpd_bench.stage2.runs`): the pseudo-masks of its stage-1 run's
        last checkpoint on train and val (stage ``pseudo_masks``), the second-stage network
        trained on the train ones, tested like any run; ``result.json`` adds ``stage``,
        ``source_run``, ``pseudo_masks`` and both stages' wall time."""
        source_dir = self.work_dir / 'runs' / spec.depends_on
        source = load_result(source_dir)
        if source is None:
            raise StageFailed('pseudo_masks', f'its stage-1 run {spec.depends_on} has no result '
                              f'(failed or not run: see {source_dir})', source_dir / 'run.log')
        masks = self.pseudo_masks(spec, source_dir, run_dir, view)
        options = {**spec.cfg_options, 'randomness.seed': spec.seed,
                   MASK_DIR_OPTION: str(pseudo_mask_folders(run_dir.resolve())['train'])}
        train = self.train(spec, options, run_dir, view)  # and the test, in the same process
        checkpoints = {'last': train['checkpoint'], 'best': train['best_checkpoint']}
        stages = [masks, train]
        metrics = self.test_checkpoints(spec, options, run_dir, checkpoints, stages, view)
        result = self.assemble(spec, options, stages, metrics, checkpoints)
        stage1_wall = source['cost']['total_wall_s']
        result.update(stage=2, source_run=spec.depends_on,
                      pseudo_masks=pseudo_mask_summary(masks['manifests']))
        result['cost'].update(stage1_wall_s=stage1_wall, both_stages_wall_s=round(
            stage1_wall + result['cost']['total_wall_s'], 3))
        write_json_atomic(run_dir / RESULT_FILE, result)
        return 'done'

    def pseudo_masks(self, spec, source_dir, run_dir, view) -> dict:
        """Stage ``pseudo_masks`` of a stage-2 run: ``lpd-bench pseudo-masks SOURCE_RUN --split
        train val --score`` into the run dir (one process, one model load; the val masks scored
        against the val masks). Its record holds the split folders' manifests."""
        folders = pseudo_mask_folders(run_dir.resolve())
        record = stage_record(run_dir, 'pseudo_masks')
        if record is not None and all(read_json(f / MANIFEST_NAME) for f in folders.values()):
            return record
        command = self.tools.stages.get('pseudo_masks', PSEUDO_MASK_COMMAND)
        cmd = [self.tools.python, *command, source_dir.resolve(), '--split', *folders,
               '--score', '--out', folders['train'].parent]
        usage = self.stage('pseudo_masks', cmd, run_dir, run_dir / 'run.log', view)
        manifests = {split: (folder, read_json(folder / MANIFEST_NAME))
                     for split, folder in folders.items()}
        missing = [str(folder) for folder, manifest in manifests.values() if manifest is None]
        if missing:
            raise StageFailed('pseudo_masks', f'no pseudo-mask manifest in {", ".join(missing)}',
                              run_dir / 'run.log')
        record = {'name': 'pseudo_masks', **self.attempts_cost(run_dir, 'pseudo_masks', usage),
                  'manifests': {split: [str(folder), manifest]
                                for split, (folder, manifest) in manifests.items()}}
        write_json_atomic(stage_marker(run_dir, 'pseudo_masks'), record)
        return record

    @staticmethod
    def check_same_config(spec, result, run_dir):
        planned = {'config': spec.config, 'seed': spec.seed, 'data_root': spec.data_root,
                   'dataset': spec.dataset}
        stored = {key: result.get(key) for key in planned}
        stored['dataset'] = result.get('dataset', DEFAULT_DATASET)  # results before LUAD
        filled = {stage.config_key for stage in spec.spec.pre_stages} | {MASK_DIR_OPTION}
        options = {k: v for k, v in result['cfg_options'].items()
                   if k != 'randomness.seed' and k not in filled}
        if stored != planned or options != spec.cfg_options:
            raise RunConflict(
                f'{run_dir / RESULT_FILE} holds another configuration ({stored}, {options}) than '
                f'the planned {planned}, {spec.cfg_options}; use another --work-dir')

    def stage(self, name, cmd, run_dir, log_path, view):
        """Runs one stage subprocess; raises StageFailed on a non-zero exit, StageInterrupted
        when the plan is stopping."""
        view.start_stage(name)
        usage = run_logged(cmd, self.tools.cwd, log_path, view.update, self.children,
                           self.stage_env())
        if self.children.stopping.is_set() and usage['returncode'] != 0:
            raise StageInterrupted(f'{name} killed: the plan is stopping')
        with open(Path(run_dir) / 'attempts.jsonl', 'a') as f:
            f.write(json.dumps({'stage': name, **usage}) + '\n')
        if usage['returncode'] != 0:
            raise StageFailed(name, f'exit code {usage["returncode"]}', log_path)
        return usage

    @staticmethod
    def attempts_cost(run_dir, name, last) -> dict:
        """Wall time summed and peak memory maxed over all attempts of a stage (resumes)."""
        rows = []
        for line in (Path(run_dir) / 'attempts.jsonl').read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
        rows = [r for r in rows if r.get('stage') == name] or [last]
        return {'wall_s': round(sum(r['wall_s'] for r in rows), 3),
                'peak_rss_mb': max(r['peak_rss_mb'] for r in rows), 'attempts': len(rows)}

    def output_files(self, stage, spec) -> tuple:
        """``(output, marker)`` of ``stage`` for run ``spec``: ``<work_dir>/<folder>/<key><suffix>``
        and the runner's ``<key>.json`` beside it."""
        folder, key = self.work_dir / stage.folder, stage.key(spec)
        return folder / f'{key}{stage.suffix}', folder / f'{key}{MARKER_SUFFIX}'

    def ensure_output(self, stage, spec, view, options=None, checkpoint=None, done=None) -> dict:
        """The record of ``stage`` (:class:`lpd_bench.methods.ExtraStage`) for run ``spec``: its
        output is built once per key and shared (a run needing an output that another run is
        building waits for it). ``done``: the outcome of the stage's task in the test process
        (:mod:`lpd_bench.engine.after_test`), if it ran there."""
        key = stage.key(spec)
        with self.output_locks_lock:
            lock = self.output_locks.setdefault((stage.folder, key), threading.Lock())
        with lock:
            return self.build_output(stage, spec, key, view, options, checkpoint, done)

    def build_output(self, stage, spec, key, view, options=None, checkpoint=None,
                     done=None) -> dict:
        """Runs ``stage`` unless its marker and output exist (then ``shared``: built before) or
        the test process built it (``done``, its task outcome: ``in_test_process``).

        Pre-stages get the run's own options (data_root, extra options: e.g. the same frozen
        encoder as training); post-stages the options training used and ``--checkpoint``."""
        folder = self.work_dir / stage.folder
        folder.mkdir(parents=True, exist_ok=True)
        path, marker = self.output_files(stage, spec)
        record = read_json(marker)
        if record is not None and path.exists():
            return {**record, 'shared': True}
        if _succeeded(done, path.resolve()):
            record = {'name': stage.name, 'wall_s': done['wall_s'], 'peak_rss_mb': None,
                      'path': str(path.resolve()), 'tool_cost': {}, 'in_test_process': True}
            write_json_atomic(marker, record)
            return {**record, 'shared': False}
        command = self.tools.stages.get(stage.name, stage.command)
        cmd = [self.tools.python, *command, spec.config, '--out', path, '--seed', spec.seed]
        if checkpoint is not None:
            cmd += ['--checkpoint', checkpoint]
        cmd += stage.extra_args(spec)
        options = spec.cfg_options if options is None else options
        if options:
            cmd += ['--cfg-options', *cfg_option_args(options)]
        usage = self.stage(stage.name, cmd, folder, folder / f'{key}.log', view)
        if not path.exists():
            raise StageFailed(stage.name, f'no output at {path}', folder / f'{key}.log')
        record = {'name': stage.name, 'wall_s': usage['wall_s'],
                  'peak_rss_mb': usage['peak_rss_mb'], 'path': str(path.resolve()),
                  'tool_cost': read_json(f'{path}.cost.json') or {}}
        write_json_atomic(marker, record)
        return {**record, 'shared': False}

    def train(self, spec, options, run_dir, view, after_test=()) -> dict:
        """Stage ``train`` (skipped when its marker exists), which then also tests the trained
        model in the same process (``tools/train.py --test-after``, with the ``after_test``
        tasks) and records that as stage ``test`` (:meth:`record_test_in_training`), so that
        :meth:`test` finds it done. The test's time is not counted as the training's."""
        record = stage_record(run_dir, 'train')
        if record is not None:
            return record
        resume = last_checkpoint(run_dir) is not None
        cmd = [self.tools.python, self.tools.train, spec.config, '--work-dir', run_dir.resolve()]
        if resume:
            cmd.append('--resume')
        metrics_file = (run_dir / METRICS_FILE).resolve()
        metrics_file.unlink(missing_ok=True)  # a stale file must not pass for this test's
        cmd += ['--test-after', metrics_file, *self.task_file_args(run_dir, after_test)]
        usage = self.stage('train', cmd + ['--cfg-options', *cfg_option_args(options)], run_dir,
                           run_dir / 'run.log', view)
        checkpoint = last_checkpoint(run_dir)
        if checkpoint is None:
            raise StageFailed('train', 'no checkpoint (last_checkpoint) in the work dir',
                              run_dir / 'run.log')
        hook = read_json(run_dir / 'cost_train.json') or {}
        totals = hook.get('totals', {})
        record = {'name': 'train', **self.attempts_cost(run_dir, 'train', usage),
                  'iters': totals.get('iters'), 'loop_wall_s': totals.get('wall_s'),
                  'params': hook.get('params'), 'resumed': resume,
                  'checkpoint': str(checkpoint.resolve()),
                  'best_checkpoint': _path_or_none(best_checkpoint(run_dir)), 'hook': hook}
        timing = read_timing(metrics_file)
        if timing is not None:
            record['wall_s'] = round(record['wall_s'] - timing['test_wall_s']
                                     - timing['after_test_wall_s'], 3)
        write_json_atomic(stage_marker(run_dir, 'train'), record)
        if timing is not None and valid_metrics(read_json(metrics_file)):
            self.record_test_in_training(run_dir, checkpoint, metrics_file, timing, usage)
        return record

    def task_file_args(self, run_dir, after_test) -> list:
        """``['--after-test', FILE]`` with the tasks written to the run's task file, or [] (and
        the outcomes of an earlier test's tasks removed)."""
        task_file = (run_dir / AFTER_TEST_FILE).resolve()
        if after_test:
            return ['--after-test', write_task_file(task_file, after_test)]
        done_file(task_file).unlink(missing_ok=True)
        return []

    @staticmethod
    def record_test_in_training(run_dir, checkpoint, metrics_file, timing, usage):
        """The marker of stage ``test`` for the test the training process ran on ``checkpoint``
        (its last), as :meth:`test` writes it: then that stage is done."""
        cost = {'wall_s': timing['test_wall_s'], 'peak_rss_mb': usage['peak_rss_mb'],
                'attempts': 1}
        Executor.write_test_record(run_dir, 'test', cost, metrics_file, checkpoint,
                                   timing['after_test_wall_s'], in_training_process=True)

    @staticmethod
    def write_test_record(run_dir, name, cost, metrics_file, checkpoint, after_test_wall_s=0.0,
                          **extra) -> dict:
        """Writes (and returns) the marker of test stage ``name``: ``cost`` (its wall time
        without the after-test tasks' ``after_test_wall_s``), the test hook's loop time, the
        metric JSON and the checkpoint tested (path and modification time)."""
        hook = read_json(run_dir / 'cost_test.json') or {}
        record = {'name': name, **cost, 'loop_wall_s': hook.get('totals', {}).get('wall_s'),
                  'metrics_file': str(metrics_file), 'checkpoint': str(checkpoint),
                  'checkpoint_mtime_ns': Path(checkpoint).stat().st_mtime_ns, 'hook': hook,
                  **extra}
        if after_test_wall_s:
            record['after_test_wall_s'] = round(after_test_wall_s, 3)
        write_json_atomic(stage_marker(run_dir, name), record)
        return record

    def after_test_tasks(self, spec, run_dir, post_stages, snapshots) -> list:
        """The work the test process can do after testing (:mod:`lpd_bench.engine.after_test`):
        each post-stage with an ``in_test`` function whose output is not built yet, and the
        snapshots when ``snapshots``."""
        tasks = []
        for stage in post_stages:
            path, marker = self.output_files(stage, spec)
            if stage.in_test and not (path.exists() and read_json(marker) is not None):
                tasks.append({'name': stage.name, 'function': stage.in_test,
                              'out': path.resolve(), 'args': stage.extra_args(spec)})
        if snapshots:
            tasks.append({'name': SNAPSHOT_TASK, 'function': SNAPSHOT_FUNCTION,
                          'out': run_dir.resolve(),
                          'args': ['--num-images', self.snapshot_images]})
        return tasks

    def test(self, spec, options, run_dir, checkpoint, view, name='test',
             metrics_name=METRICS_FILE, after_test=()) -> dict:
        """Stage ``name``: tools/test.py on ``checkpoint``, metric JSON ``metrics_name`` in the
        run dir. Skipped when its marker names the same checkpoint file (path and modification
        time) and its metric JSON is valid. ``after_test``: tasks for the test process after the
        test (:meth:`after_test_tasks`, outcomes in ``AFTER_TEST_FILE.done.json``); their time
        is recorded as ``after_test_wall_s``, not as the test's."""
        metrics_file = (run_dir / metrics_name).resolve()
        tested = {'checkpoint': str(checkpoint),
                  'checkpoint_mtime_ns': Path(checkpoint).stat().st_mtime_ns}
        record = stage_record(run_dir, name)
        if (record is not None and all(record.get(k) == v for k, v in tested.items())
                and valid_metrics(read_json(metrics_file))):
            return record
        metrics_file.unlink(missing_ok=True)  # a stale file must not pass for this test's
        options = {**options, 'test_evaluator.output_file': metrics_file}
        cmd = [self.tools.python, self.tools.test, spec.config, checkpoint,
               '--work-dir', run_dir.resolve(), *self.task_file_args(run_dir, after_test),
               '--cfg-options', *cfg_option_args(options)]
        usage = self.stage(name, cmd, run_dir, run_dir / 'run.log', view)
        if not valid_metrics(read_json(metrics_file)):
            raise StageFailed(name, f'no valid metric JSON at {metrics_file}',
                              run_dir / 'run.log')
        cost = self.attempts_cost(run_dir, name, usage)
        spent = (sum(o['wall_s'] for o in read_outcomes(run_dir / AFTER_TEST_FILE).values())
                 if after_test else 0.0)
        cost['wall_s'] = round(cost['wall_s'] - spent, 3)
        return self.write_test_record(run_dir, name, cost, metrics_file, checkpoint, spent)

    def test_best(self, spec, options, run_dir, checkpoints, test, view) -> dict:
        """Stage ``test_best``: the best-on-val checkpoint tested like the last one; when both
        are of the same iteration (the same weights), the last one's metrics are reused."""
        if checkpoint_number(Path(checkpoints['best'])) == checkpoint_number(
                Path(checkpoints['last'])):
            return {'name': 'test_best', 'wall_s': 0.0, 'peak_rss_mb': None, 'attempts': 0,
                    'reused_from': 'test', 'metrics_file': test['metrics_file'],
                    'checkpoint': checkpoints['best']}
        return self.test(spec, options, run_dir, checkpoints['best'], view, name='test_best',
                         metrics_name=BEST_METRICS_FILE)

    def snapshot(self, spec, options, run_dir, checkpoint, view):
        """Saves predictions and prototype maps of a few test images (failure only warns)."""
        cmd = [self.tools.python, *self.tools.snapshot, spec.config, checkpoint,
               '--out', run_dir.resolve(), '--num-images', self.snapshot_images,
               '--cfg-options', *cfg_option_args(options)]
        try:
            self.stage('snapshots', cmd, run_dir, run_dir / 'run.log', view)
        except StageFailed as err:
            view.message(f'warning: {err} (see {err.log_path}); '
                         'the report will lack its qualitative figures')

    def assemble(self, spec, options, stages, metrics, checkpoints) -> dict:
        """The result (ARCHITECTURE.md "Run result contract"): ``metrics`` of the last
        checkpoint, ``metrics_by_checkpoint`` and ``checkpoints`` of 'last' and 'best'."""
        memberships = [m for m in spec.memberships if m['name'] != MAIN_GROUP]
        stage_costs = [{k: v for k, v in s.items() if k not in NOT_COST_KEYS} for s in stages]
        last = metrics['last']
        return {
            'schema': SCHEMA, 'run_id': spec.run_id, 'method': spec.method,
            'ablation': memberships[0] if memberships else None,
            'memberships': spec.memberships, 'seed': spec.seed, 'preset': spec.preset,
            'dataset': spec.dataset, 'data_root': spec.data_root,
            'synthetic': spec.data_root is None,
            'config': spec.config, 'cfg_options': options, 'metrics': last,
            'metrics_by_checkpoint': metrics, 'checkpoints': checkpoints,
            'protocol': {**last.get('protocol', {}), 'checkpoint': 'last',
                         'checkpoint_path': checkpoints['last']},
            'cost': {'stages': stage_costs,
                     'total_wall_s': round(sum(s['wall_s'] for s in stages), 3),
                     'peak_rss_mb': max(s['peak_rss_mb'] for s in stages
                                        if s['peak_rss_mb'] is not None)},
            'env': {**environment(self.tools.cwd), 'threads': self.threads, 'jobs': self.jobs},
            'finished_at': datetime.datetime.now().isoformat(timespec='seconds'),
        }


def _succeeded(outcome, out) -> bool:
    """Whether an after-test task's ``outcome`` says it wrote ``out`` (and it is there)."""
    return (bool(outcome) and outcome.get('ok') and outcome.get('out') == str(out)
            and Path(out).exists())


def _path_or_none(path):
    return None if path is None else str(Path(path).resolve())

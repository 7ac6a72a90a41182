"""``lpd-bench run --executor slurm``: every run of the plan one job, submitted through submitit.

A job executes its run exactly as the local executor does: :meth:`Executor.run_one` of a one-run
executor inside the job (the run's stages in order, the ``stage_<name>.json`` markers that skip
finished stages, ``--resume`` from the last checkpoint, ``failed.json`` on a failed stage,
``result.json`` written last), so a run is resumable and a finished one is skipped whichever
executor ran it. In the submitting process (:class:`SlurmPlan`):

- a run whose ``result.json`` is there (of the same configuration) is not submitted
  (``skipped``); one of another configuration fails, as locally (``failed.json``);
- a stage-2 run whose stage-1 run has a job gets ``--dependency=afterany:<that job>``: it starts
  once stage 1 has ended, whatever its outcome (without a stage-1 result it fails, as locally).
  On submitit's ``local`` cluster, which has no dependencies, it is submitted once that job ended;
- a run whose job of an earlier submission is still pending or running
  (``<work_dir>/slurm/jobs.json``, SLURM only) is not submitted again: that job is followed;
- by default it then waits and prints each run's outcome as its job ends (a job that ended
  without returning the run's outcome, e.g. killed for memory, gets ``failed.json`` with its
  log's tail) and writes ``plan_wall.json``; ``--no-wait`` returns once the jobs are submitted.

A job that reaches its time limit is requeued (submitit's checkpointing, up to 3 times): its
running stage is stopped and the run resumes from its last checkpoint in the next allocation.
Resources come from :class:`SlurmSettings`: ``lpd-bench run`` options over a YAML file
(:func:`load_settings`). submitit's files and the jobs' logs are under ``<work_dir>/slurm/``.
DDP inside one run is another thing: ``tools/dist_train.sh`` or ``tools/train.py --launcher slurm``.
"""
import dataclasses
import datetime
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import submitit
from submitit.helpers import Checkpointable

from .execute import Executor, PlanInterrupted, RunConflict, log_tail
from .progress import Progress, format_duration
from .results import FAILED_FILE, load_result, read_json, write_json_atomic, write_plan_wall

#: Under the work dir: submitit's files (pickles, job logs ``<job id>_0_log.out/.err``).
SLURM_FOLDER = 'slurm'
#: In :data:`SLURM_FOLDER`: run id -> the job of its last submission.
JOBS_FILE = 'jobs.json'
#: ``cluster`` values: a SLURM cluster, or submitit's local executor (processes of this machine).
CLUSTERS = ('slurm', 'local')
#: A stage-2 job starts once its stage-1 job has ended, whatever its outcome.
DEPENDENCY = 'afterany'
#: SLURM states of a job that is not over: a rerun follows it instead of submitting the run again.
LIVE_STATES = frozenset({'PENDING', 'RUNNING', 'REQUEUED', 'CONFIGURING', 'COMPLETING',
                         'RESIZING', 'SUSPENDED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'SIGNALING',
                         'STAGE_OUT'})
POLL_S = 30.0


@dataclass
class SlurmSettings:
    """Resources of each run's job.

    ``time``: minutes; ``gpus_per_run``: 0 for a CPU-only run; ``mem_gb``: None for the
    partition's default; ``sbatch``: further ``#SBATCH`` options (e.g. ``{'account': 'proj',
    'qos': 'normal', 'constraint': 'h100'}``); ``setup``: shell lines the job runs before Python
    (e.g. ``module load cuda/12.4``); ``cluster``: ``slurm``, or ``local`` (submitit's local
    executor: the jobs are processes of this machine; no partition, memory or dependencies)."""
    partition: Optional[str] = None
    time: int = 720
    gpus_per_run: int = 1
    cpus_per_run: int = 8
    mem_gb: Optional[int] = None
    sbatch: dict = field(default_factory=dict)
    setup: list = field(default_factory=list)
    cluster: str = 'slurm'

    def describe(self) -> str:
        parts = [f'partition {self.partition or "(default)"}', f'{self.time} min',
                 f'{self.gpus_per_run} GPU(s)', f'{self.cpus_per_run} CPU(s)',
                 f'{self.mem_gb} GB' if self.mem_gb else 'default memory']
        return ', '.join(parts + [f'{k}={v}' for k, v in self.sbatch.items()])


def _count(key, value, minimum):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f'{key}: expected an integer, got {value!r}') from None
    if number != value and str(number) != str(value).strip() or number < minimum:
        raise ValueError(f'{key}: expected an integer >= {minimum}, got {value!r}')
    return number


def load_settings(path=None, **options) -> SlurmSettings:
    """The settings of a YAML file ``path`` (a mapping of :class:`SlurmSettings`' keys; ``-`` may
    stand for ``_``), overridden by the ``options`` that are not None (the command line)."""
    values = {}
    if path is not None:
        import yaml
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f'{path}: expected a mapping of settings, got {type(data).__name__}')
        values.update({str(key).replace('-', '_'): value for key, value in data.items()})
    values.update({key: value for key, value in options.items() if value is not None})
    known = [f.name for f in dataclasses.fields(SlurmSettings)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f'unknown SLURM setting(s) {", ".join(unknown)}; known: '
                         f'{", ".join(known)}')
    for key, minimum in (('time', 1), ('gpus_per_run', 0), ('cpus_per_run', 1), ('mem_gb', 1)):
        if values.get(key) is not None:
            values[key] = _count(key, values[key], minimum)
    if isinstance(values.get('setup'), str):
        values['setup'] = [values['setup']]
    if not isinstance(values.get('sbatch', {}), dict):
        raise ValueError('sbatch: expected a mapping of #SBATCH options (e.g. account: proj)')
    if not isinstance(values.get('setup', []), list):
        raise ValueError('setup: expected a list of shell lines')
    settings = SlurmSettings(**values)
    if settings.cluster not in CLUSTERS:
        raise ValueError(f'cluster: {settings.cluster!r}, expected one of {", ".join(CLUSTERS)}')
    return settings


def job_parameters(settings: SlurmSettings, name: str, after=None) -> dict:
    """``AutoExecutor.update_parameters`` of one run's job; ``after``: the job id it waits for."""
    params = {'name': name, 'timeout_min': settings.time, 'nodes': 1, 'tasks_per_node': 1,
              'cpus_per_task': settings.cpus_per_run}
    if settings.gpus_per_run:
        params['gpus_per_node'] = settings.gpus_per_run
    if settings.mem_gb is not None:
        params['mem_gb'] = settings.mem_gb
    if settings.partition:
        params['slurm_partition'] = settings.partition
    extra = {str(key).replace('-', '_'): value for key, value in settings.sbatch.items()}
    if after is not None:
        extra['dependency'] = f'{DEPENDENCY}:{after}'
    params['slurm_additional_parameters'] = extra  # always: replaces the previous job's
    if settings.setup:
        params['slurm_setup'] = [str(line) for line in settings.setup]
    return params


#: The executor of the run this job process executes (its stage is stopped on a requeue).
_RUNNING = []


class RunJob(Checkpointable):
    """One run as a submitit job: :meth:`Executor.run_one` of a one-run executor (all the job's
    cores for its stages), as the local executor runs it; returns the run's status. On the time
    limit (submitit's signal) the running stage is stopped and the job requeued with the same
    run, which resumes from its markers and last checkpoint."""

    def __init__(self, work_dir, spec, tools, snapshot_images, first_seed):
        self.work_dir, self.spec, self.tools = str(work_dir), spec, tools
        self.snapshot_images, self.first_seed = snapshot_images, first_seed

    def __call__(self) -> str:
        executor = Executor(self.work_dir, Progress(1, stream=sys.stdout), self.tools,
                            snapshot_images=self.snapshot_images, jobs=1)
        _RUNNING[:] = [executor]
        executor.prepare_shared_weights([self.spec])
        return executor.run_one(1, self.spec, self.first_seed)

    def checkpoint(self, *args, **kwargs):
        for executor in _RUNNING:
            executor.children.kill(signal.SIGTERM)
        return super().checkpoint(*args, **kwargs)


class SlurmPlan:
    """Submits the runs of plans to ``work_dir`` as jobs with ``settings`` and follows them
    (module doc); ``progress``: a :class:`progress.Progress` (its lines only)."""

    def __init__(self, work_dir, settings: SlurmSettings, progress, tools=None,
                 snapshot_images=4, poll_s=POLL_S):
        self.work_dir = Path(work_dir).resolve()
        self.settings = settings
        self.progress = progress
        # run dirs, configuration checks and failure records as the local executor has them
        self.local = Executor(self.work_dir, progress, tools, snapshot_images, jobs=1)
        self.folder = self.work_dir / SLURM_FOLDER
        self.poll_s = poll_s
        self.executor = None  # the submitit executor, made on the first submission

    def submitit_executor(self):
        if self.executor is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.executor = submitit.AutoExecutor(folder=self.folder,
                                                  cluster=self.settings.cluster)
        return self.executor

    def submit(self, spec, first_seed, after=None):
        """Submits run ``spec``'s job (after job id ``after``); records it in ``jobs.json``."""
        executor = self.submitit_executor()
        executor.update_parameters(**job_parameters(self.settings, spec.run_id, after))
        job = executor.submit(RunJob(self.work_dir, spec, self.local.tools,
                                     self.local.snapshot_images, first_seed))
        jobs = read_json(self.folder / JOBS_FILE) or {}
        jobs[spec.run_id] = {'job_id': str(job.job_id), 'cluster': self.settings.cluster,
                             'after': after, 'submitted_at': _now()}
        write_json_atomic(self.folder / JOBS_FILE, jobs)
        return job

    def done_already(self, spec, view):
        """'skipped' when the run's result is there (of its configuration), 'failed' when it is
        another configuration's (recorded as locally), None when the run is to do."""
        run_dir = self.local.run_dir(spec)
        existing = load_result(run_dir)
        if existing is None:
            return None
        try:
            self.local.check_same_config(spec, existing, run_dir)
        except RunConflict as err:
            self.local.record_failure(spec, err, view)
            return 'failed'
        return 'skipped'

    def live_job(self, run_id):
        """The job of an earlier submission of ``run_id`` while SLURM says it is not over."""
        record = (read_json(self.folder / JOBS_FILE) or {}).get(run_id)
        if self.settings.cluster != 'slurm' or not record or record.get('cluster') != 'slurm':
            return None
        job = submitit.SlurmJob(folder=self.folder, job_id=record['job_id'])
        state = (job.state or '').split()
        return job if state and state[0] in LIVE_STATES else None

    def run_plan(self, plan, wait=True) -> dict:
        """Submits the plan's runs still to do; returns {run_id: status}: 'skipped', 'failed',
        and once waited 'done' (or the status the job returned), else 'submitted'."""
        dependencies = self.settings.cluster == 'slurm'
        if not wait and not dependencies:
            raise ValueError(f'--no-wait needs SLURM (cluster {self.settings.cluster!r} has no job '
                             'dependencies: this process submits stage-2 jobs)')
        start = time.monotonic()
        first_seed = min((spec.seed for spec in plan), default=0)
        planned = {spec.run_id: spec for spec in plan}
        views = {spec.run_id: _View(self.progress, index, len(plan), spec.run_id)
                 for index, spec in enumerate(plan, 1)}
        outcome, jobs, held, submitted = {}, {}, [], 0
        for spec in plan:
            view = views[spec.run_id]
            status = self.done_already(spec, view)
            if status is not None:
                outcome[spec.run_id] = status
                if status == 'skipped':
                    view.message(f'done already ({self.local.run_dir(spec) / "result.json"})')
                continue
            job = self.live_job(spec.run_id)
            if job is not None:
                jobs[spec.run_id] = job
                view.message(f'job {job.job_id} of an earlier submission is {job.state}: '
                             'following it')
                continue
            first = jobs.get(spec.depends_on) if spec.depends_on in planned else None
            if first is not None and not dependencies:
                held.append(spec)
                view.message(f'held until job {first.job_id} ({spec.depends_on}) ends')
                continue
            after = None if first is None else first.job_id
            jobs[spec.run_id] = self.submit(spec, first_seed, after)
            submitted += 1
            view.message(f'submitted as job {jobs[spec.run_id].job_id}'
                         + (f' (after job {after}, {spec.depends_on})' if after else ''))
        if not wait:
            self.progress.message(
                f'{len(jobs)} job(s) submitted or running; logs in {self.folder}; '
                '`lpd-bench list` shows the runs, the same command again follows them')
            return {run_id: outcome.get(run_id, 'submitted') for run_id in planned}
        try:
            while jobs or held:
                for run_id, job in list(jobs.items()):
                    if job.done():
                        del jobs[run_id]
                        outcome[run_id] = self.job_outcome(planned[run_id], job, views[run_id])
                for spec in list(held):
                    if spec.depends_on in outcome:
                        held.remove(spec)
                        jobs[spec.run_id] = self.submit(spec, first_seed)
                        submitted += 1
                        views[spec.run_id].message(
                            f'submitted as job {jobs[spec.run_id].job_id}')
                if jobs or held:
                    time.sleep(self.poll_s)
        except KeyboardInterrupt:
            if dependencies:
                self.progress.message(f'stopped following; the jobs go on (`scancel` them to '
                                      f'stop): {" ".join(str(j.job_id) for j in jobs.values())}')
            else:
                for job in jobs.values():
                    job.cancel(check=False)
            raise PlanInterrupted(signal.SIGINT) from None
        self.record_plan_wall(plan, outcome, submitted, time.monotonic() - start)
        return {run_id: outcome[run_id] for run_id in planned}

    def job_outcome(self, spec, job, view) -> str:
        """The status job ``job`` returned; a job that ended without one (killed, timed out more
        than submitit requeues, node failure) is the run's outcome 'failed' with ``failed.json``
        (its log's tail), unless the run's result is there."""
        try:
            status = job.result()
        except Exception as err:  # noqa: BLE001 (submitit's UncompletedJobError, FailedJobError)
            if load_result(self.local.run_dir(spec)) is not None:
                status = 'done'
            else:
                status = 'failed'
                self.record_job_failure(spec, job, err)
        detail = ''
        if status == 'failed':
            failure = read_json(self.local.run_dir(spec) / FAILED_FILE) or {}
            detail = f': {failure.get("error", "?")} (see {failure.get("log", "-")})'
        view.message(f'{status} (job {job.job_id}){detail}')
        return status

    def record_job_failure(self, spec, job, err):
        run_dir = self.local.run_dir(spec)
        run_dir.mkdir(parents=True, exist_ok=True)
        log = job.paths.stderr
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        write_json_atomic(run_dir / FAILED_FILE, {
            'run_id': spec.run_id, 'stage': None, 'job_id': str(job.job_id),
            'error': f'job {job.job_id} ended without the run\'s outcome: {first_line}',
            'log': str(log), 'log_tail': log_tail(log), 'time': _now()})

    def record_plan_wall(self, plan, outcome, submitted, wall_s):
        """``plan_wall.json`` as the local executor writes it, from submission to the last job's
        end (queue time included); ``jobs``: the jobs submitted, ``threads``: cores per job."""
        write_plan_wall(self.work_dir, plan, outcome, wall_s, submitted,
                        self.settings.cpus_per_run, executor=self.settings.cluster)


class _View:
    """``[i/N] run_id: text`` lines, as the local executor's run views print them."""

    def __init__(self, progress, index, total, run_id):
        self.progress, self.prefix = progress, f'[{index}/{total}] {run_id}'

    def message(self, text):
        self.progress.message(f'{self.prefix}: {text}')


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec='seconds')


def slurm_run_command(args, plan) -> int:
    """``lpd-bench run --executor slurm`` on ``plan`` (``args``: the run command's)."""
    try:
        settings = load_settings(args.slurm_config, partition=args.partition, time=args.time,
                                 gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run,
                                 mem_gb=args.mem_gb)
    except (OSError, ValueError) as err:
        raise SystemExit(f'SLURM settings: {err}')
    runner = SlurmPlan(args.work_dir, settings, Progress(len(plan)))
    print(f'{len(plan)} runs in {args.work_dir}, one {settings.cluster} job each '
          f'({settings.describe()}); logs in {runner.folder}')
    start = time.monotonic()
    try:
        outcome = runner.run_plan(plan, wait=args.wait)
    except ValueError as err:
        raise SystemExit(str(err))
    except RuntimeError as err:  # submitit: no srun/sbatch here, sbatch refused the job
        raise SystemExit(f'submission failed: {err}')
    except PlanInterrupted as err:
        print(f'{err}: rerun the same command to follow the jobs and resubmit unfinished runs')
        return 128 + err.signum
    failed = [run_id for run_id, status in outcome.items() if status == 'failed']
    if not args.wait:
        counts = {}
        for status in outcome.values():
            counts[status] = counts.get(status, 0) + 1
        print(', '.join(f'{n} {s}' for s, n in sorted(counts.items())))
        return 1 if failed else 0
    done = sum(status in ('done', 'skipped') for status in outcome.values())
    print(f'{done}/{len(plan)} runs complete in {format_duration(time.monotonic() - start)}'
          + (f'; failed: {", ".join(failed)}' if failed else ''))
    return 1 if failed or done < len(plan) else 0

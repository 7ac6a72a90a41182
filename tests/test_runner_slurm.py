"""``lpd-bench run --executor slurm`` (lpd_bench.runner.slurm) with the fake tools: a plan run as
submitit jobs on its local cluster (results as the local executor's, stage 2 after stage 1, a
rerun submits nothing, a failed run recorded), the settings (YAML + options), and on a fake
SLURM (sbatch/srun/sacct scripts on PATH) the #SBATCH lines and the dependency of each job."""
import io
import os
import textwrap
from pathlib import Path

import pytest

from helpers import make_tools

from lpd_bench.cli import main
from lpd_bench.runner import slurm
from lpd_bench.runner.execute import Executor
from lpd_bench.runner.plan import build_plan
from lpd_bench.runner.progress import Progress
from lpd_bench.runner.results import PLAN_WALL_FILE, load_result, read_json, run_status
from lpd_bench.runner.slurm import SlurmPlan, SlurmSettings, job_parameters, load_settings


LOCAL = SlurmSettings(cluster='local', gpus_per_run=0, cpus_per_run=1, time=10)


@pytest.fixture
def tools(tmp_path):
    return make_tools(tmp_path)


def two_runs_and_a_stage2_run():
    """cam seeds 0 and 1, and the stage-2 run of seed 0 (which depends on cam__seed0)."""
    plan = build_plan(['cam'], seeds=[0, 1], stage2=True)
    return [spec for spec in plan if spec.run_id != 'cam__stage2__seed1']


def submitted_jobs(work_dir):
    return read_json(work_dir / 'slurm' / slurm.JOBS_FILE) or {}


def shape(value):
    """The keys of a result, recursively (the form, not the values)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__ if value is not None else None


def test_plan_runs_as_jobs_like_the_local_executor_and_a_rerun_submits_nothing(
        tmp_path, tools, monkeypatch):
    monkeypatch.setenv('FAKE_SLEEP', '0.1')
    plan = two_runs_and_a_stage2_run()
    work = tmp_path / 'w'
    out = io.StringIO()
    runner = SlurmPlan(work, LOCAL, Progress(len(plan), stream=out), tools, poll_s=0.2)
    assert runner.run_plan(plan) == {'cam__seed0': 'done', 'cam__seed1': 'done',
                                     'cam__stage2__seed0': 'done'}
    text = out.getvalue()
    assert '[2/3] cam__stage2__seed0: held until job' in text
    assert '[1/3] cam__seed0: done (job' in text
    runs = work / 'runs'
    # the stage-2 job started after its stage-1 job had ended
    stage1_end = float((runs / 'cam__seed0' / 'interval.txt').read_text().split()[1])
    assert float((runs / 'cam__stage2__seed0' / 'pm_started.txt').read_text()) >= stage1_end
    jobs = submitted_jobs(work)
    assert set(jobs) == {spec.run_id for spec in plan}
    for record in jobs.values():  # each job's log under <work_dir>/slurm/
        assert (work / 'slurm' / f'{record["job_id"]}_0_log.out').is_file()
    assert 'train' in (work / 'slurm' / f'{jobs["cam__seed0"]["job_id"]}_0_log.out').read_text()
    wall = read_json(work / PLAN_WALL_FILE)
    assert (wall['runs'], wall['executed'], wall['jobs'], wall['executor']) == (3, 3, 3, 'local')

    # the results have the form of the local executor's, with the same numbers
    local = Executor(tmp_path / 'local', Progress(len(plan), stream=io.StringIO()), tools, jobs=1)
    assert set(local.run_plan(plan).values()) == {'done'}
    for spec in plan:
        as_job = load_result(runs / spec.run_id)
        here = load_result(tmp_path / 'local' / 'runs' / spec.run_id)
        assert shape(as_job) == shape(here), spec.run_id
        assert as_job['metrics'] == here['metrics']
        assert as_job['cfg_options'].keys() == here['cfg_options'].keys()
        assert [s['name'] for s in as_job['cost']['stages']] == [
            s['name'] for s in here['cost']['stages']]
    assert load_result(runs / 'cam__stage2__seed0')['source_run'] == 'cam__seed0'

    # a rerun submits nothing: every run is skipped as done
    out = io.StringIO()
    runner = SlurmPlan(work, LOCAL, Progress(len(plan), stream=out), tools, poll_s=0.2)
    assert set(runner.run_plan(plan).values()) == {'skipped'}
    assert submitted_jobs(work) == jobs
    assert 'done already' in out.getvalue() and 'submitted' not in out.getvalue()
    # training was not redone
    assert (runs / 'cam__seed0' / 'starts.txt').read_text().split() == ['0']


def test_failed_runs_are_recorded_as_locally_and_a_killed_job_leaves_failed_json(tmp_path,
                                                                                  tools):
    # cam__seed0's training exits 3 (a failed stage); cam__seed1's kills the job's process (as an
    # OOM kill or a node failure would: the job ends without returning the run's outcome)
    train = Path(tools.train)
    killer = train.with_name('train_or_kill.py')
    killer.write_text('import os, signal, sys\n'
                      "if 'model.decode_head.refiner_loss=kill' in sys.argv:\n"
                      '    os.kill(os.getppid(), signal.SIGKILL)\n' + train.read_text())
    tools.train = str(killer)
    plan = two_runs_and_a_stage2_run()
    plan[0].cfg_options['model.decode_head.refiner_loss'] = 'fail'  # the fake train exits 3
    plan[2].cfg_options['model.decode_head.refiner_loss'] = 'kill'
    assert [spec.run_id for spec in plan] == ['cam__seed0', 'cam__stage2__seed0', 'cam__seed1']
    out = io.StringIO()
    work = tmp_path / 'w'
    runner = SlurmPlan(work, LOCAL, Progress(len(plan), stream=out), tools, poll_s=0.2)
    assert runner.run_plan(plan) == {'cam__seed0': 'failed', 'cam__stage2__seed0': 'failed',
                                     'cam__seed1': 'failed'}
    runs = work / 'runs'
    assert run_status(runs / 'cam__seed0') == 'failed'
    failed = read_json(runs / 'cam__seed0' / 'failed.json')
    assert failed['stage'] == 'train' and 'exit code 3' in failed['error']
    assert 'boom' in failed['log_tail']
    second = read_json(runs / 'cam__stage2__seed0' / 'failed.json')
    assert 'its stage-1 run cam__seed0 has no result' in second['error']
    assert 'cam__seed0: failed (job' in out.getvalue() and 'exit code 3' in out.getvalue()
    killed = read_json(runs / 'cam__seed1' / 'failed.json')
    job_id = submitted_jobs(work)['cam__seed1']['job_id']
    assert killed['job_id'] == job_id and killed['stage'] is None
    assert f"job {job_id} ended without the run's outcome" in killed['error']
    assert killed['log'].endswith(f'{job_id}_0_log.err')
    assert run_status(runs / 'cam__seed1') == 'failed'


def test_settings_from_yaml_with_the_command_line_over_it(tmp_path):
    path = tmp_path / 'slurm.yaml'
    path.write_text(textwrap.dedent('''
        partition: gpu
        time: 90
        gpus-per-run: 2
        mem_gb: 64
        sbatch: {account: proj, qos: normal}
        setup: module load cuda/12.4
    '''))
    settings = load_settings(path, partition='debug', cpus_per_run=4, time=None)
    assert settings == SlurmSettings(partition='debug', time=90, gpus_per_run=2, cpus_per_run=4,
                                     mem_gb=64, sbatch={'account': 'proj', 'qos': 'normal'},
                                     setup=['module load cuda/12.4'], cluster='slurm')
    assert load_settings() == SlurmSettings()
    with pytest.raises(ValueError, match='unknown SLURM setting.*gpus'):
        path.write_text('gpus: 2\n')
        load_settings(path)
    with pytest.raises(ValueError, match='time: expected an integer'):
        load_settings(time='soon')
    with pytest.raises(ValueError, match='cluster'):
        load_settings(cluster='pbs')
    params = job_parameters(settings, 'lpd__seed0', after='41')
    assert params == {'name': 'lpd__seed0', 'timeout_min': 90, 'nodes': 1, 'tasks_per_node': 1,
                      'cpus_per_task': 4, 'gpus_per_node': 2, 'mem_gb': 64,
                      'slurm_partition': 'debug',
                      'slurm_additional_parameters': {'account': 'proj', 'qos': 'normal',
                                                      'dependency': 'afterany:41'},
                      'slurm_setup': ['module load cuda/12.4']}


FAKE_SBATCH = '''#!/bin/sh
# fake sbatch: a new job id per call
n=$(cat "$FAKE_SLURM/next" 2>/dev/null || echo 100)
echo $((n + 1)) > "$FAKE_SLURM/next"
echo "$@" >> "$FAKE_SLURM/sbatch_calls"
echo "Submitted batch job $n"
'''
FAKE_SACCT = '''#!/bin/sh
# fake sacct: every job asked for (-j ID) is in state $FAKE_SACCT_STATE
echo "JobID|State|NodeList"
take=0
for arg in "$@"; do
  if [ "$take" = 1 ]; then echo "$arg|$FAKE_SACCT_STATE|node1"; take=0; fi
  [ "$arg" = "-j" ] && take=1
done
exit 0
'''


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch, srun and sacct stand-ins on PATH (nothing is run: the jobs stay 'submitted')."""
    folder = tmp_path / 'fake_slurm'
    folder.mkdir()
    for name, text in (('sbatch', FAKE_SBATCH), ('sacct', FAKE_SACCT),
                       ('srun', '#!/bin/sh\nexit 0\n'), ('scancel', '#!/bin/sh\nexit 0\n')):
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    monkeypatch.setenv('PATH', f'{folder}:{os.environ["PATH"]}')
    monkeypatch.setenv('FAKE_SLURM', str(folder))
    monkeypatch.setenv('FAKE_SACCT_STATE', 'RUNNING')
    return folder


def test_on_slurm_the_jobs_get_the_settings_and_stage2_its_dependency(tmp_path, tools,
                                                                       fake_slurm):
    plan = build_plan(['cam'], seeds=[0], stage2=True)
    settings = SlurmSettings(partition='gpu', time=90, gpus_per_run=2, cpus_per_run=4,
                             mem_gb=64, sbatch={'account': 'proj'},
                             setup=['module load cuda/12.4'])
    work = tmp_path / 'w'
    out = io.StringIO()
    runner = SlurmPlan(work, settings, Progress(len(plan), stream=out), tools)
    assert runner.run_plan(plan, wait=False) == {'cam__seed0': 'submitted',
                                                 'cam__stage2__seed0': 'submitted'}
    jobs = submitted_jobs(work)
    assert {run_id: record['job_id'] for run_id, record in jobs.items()} == {
        'cam__seed0': '100', 'cam__stage2__seed0': '101'}
    scripts = {run_id: (work / 'slurm' / f'{record["job_id"]}_submission.sh').read_text()
               for run_id, record in jobs.items()}
    for run_id, script in scripts.items():
        for line in ('#SBATCH --partition=gpu', '#SBATCH --time=90', '#SBATCH --gpus-per-node=2',
                     '#SBATCH --cpus-per-task=4', '#SBATCH --mem=64GB',
                     '#SBATCH --account=proj', f'#SBATCH --job-name={run_id}',
                     'module load cuda/12.4'):
            assert line in script, (run_id, line, script)
    assert '--dependency' not in scripts['cam__seed0']
    assert '#SBATCH --dependency=afterany:100' in scripts['cam__stage2__seed0']
    assert 'submitted as job 101 (after job 100, cam__seed0)' in out.getvalue()

    # rerun while both jobs are running: nothing is submitted again, they are followed
    out = io.StringIO()
    runner = SlurmPlan(work, settings, Progress(len(plan), stream=out), tools)
    assert set(runner.run_plan(plan, wait=False).values()) == {'submitted'}
    assert len((fake_slurm / 'sbatch_calls').read_text().splitlines()) == 2
    assert 'job 100 of an earlier submission is RUNNING: following it' in out.getvalue()


def test_the_command_line_reaches_the_slurm_plan(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_run_plan(self, plan, wait=True):
        seen.update(settings=self.settings, wait=wait, runs=[spec.run_id for spec in plan],
                    work_dir=self.work_dir)
        return {spec.run_id: 'submitted' for spec in plan}

    monkeypatch.setattr(SlurmPlan, 'run_plan', fake_run_plan)
    config = tmp_path / 'slurm.yaml'
    config.write_text('partition: a100\ntime: 600\nsbatch: {account: proj}\n')
    assert main(['run', 'cam', '--executor', 'slurm', '--work-dir', str(tmp_path / 'w'),
                 '--slurm-config', str(config), '--time', '120', '--gpus-per-run', '1',
                 '--cpus-per-run', '6', '--mem-gb', '40', '--no-wait']) == 0
    assert seen['settings'] == SlurmSettings(partition='a100', time=120, gpus_per_run=1,
                                             cpus_per_run=6, mem_gb=40,
                                             sbatch={'account': 'proj'})
    assert seen['wait'] is False and seen['runs'] == ['cam__seed0', 'cam__stage2__seed0']
    assert seen['work_dir'] == (tmp_path / 'w').resolve()
    assert 'one slurm job each' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='unknown SLURM setting'):
        config.write_text('gpu: 1\n')
        main(['run', 'cam', '--executor', 'slurm', '--slurm-config', str(config)])

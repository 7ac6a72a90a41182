"""`lpd-bench bench` end to end on tiny cases of the CPU preset."""
import csv
import os.path as osp

import pytest

from lpd_bench.bench.cases import CaseSpec, case_by_name, select_cases
from lpd_bench.bench.memory import cpu_peak_in_subprocess
from lpd_bench.cli import main

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: Two prototypes per class; the MiT and the refiner encoder from random weights (a step's time
#: does not depend on them; the preset would otherwise pretrain them on the default set first).
TINY = ['model.decode_head.prototypes.num_per_class=2', 'backbone_init=scratch',
        'cpu_encoder=random']


@pytest.mark.slow  # two tiny models, ~10 s; more when the cores are busy
def test_bench_command_writes_perf_md_and_csv(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    out = tmp_path / 'reports'
    code = main(['bench', '--preset', 'cpu', '--cases', 'cam_step', 'lpd_step_after',
                 '--batch', '2', '--input', '64', '--repeats', '1', '--warmup', '0', '--no-memory',
                 '--out', str(out), '--cfg-options', *TINY])
    assert code == 0
    with open(out / 'perf.csv') as f:
        rows = list(csv.DictReader(f))
    measures = [r for r in rows if r['record'] == 'measure']
    assert [r['case'] for r in measures] == ['cam_step', 'lpd_step_after']
    for r in measures:
        assert (r['preset'], r['batch'], r['input_size'], r['repeats']) == ('cpu', '2', '64', '1')
        assert float(r['median_s']) > 0 and float(r['images_per_s']) == pytest.approx(
            2 / float(r['median_s']), rel=1e-3)
        assert r['peak_mem_mib'] == '' and r['memory_method'] == 'not measured'
    env = {r['case']: r['detail'] for r in rows if r['record'] == 'env'}
    assert env['torch threads'] and env['CPU'] and 'torch ' in env['versions']
    assert ('--cfg-options model.decode_head.prototypes.num_per_class=2 backbone_init=scratch '
            'cpu_encoder=random') in env['command']
    text = (out / 'perf.md').read_text()
    assert '### batch 2, input 64x64' in text and '| lpd_step_after |' in text
    assert 'target' not in text.lower()  # measuring only: the targets are in tests/perf/
    printed = capsys.readouterr().out
    assert '[bench] cpu/cam_step (batch 2, input 64): median ' in printed


def test_unknown_case_and_preset_are_named():
    with pytest.raises(KeyError, match="no case 'nope' in preset 'cpu'"):
        case_by_name('cpu', 'nope')
    with pytest.raises(KeyError, match="unknown preset 'gpu'"):
        select_cases('gpu', None)


@pytest.mark.slow
def test_memory_probe_reports_subprocess_peak():
    spec = CaseSpec('lpd_step_after', 'train_step', 'lpd', train_iter='warmup')
    result = cpu_peak_in_subprocess(dict(
        spec=spec.to_dict(), config=osp.join(ROOT, 'configs', 'lpd_synth_cpu.py'), batch=2, size=64,
        cfg_options={'model.decode_head.prototypes.num_per_class': 2, 'backbone_init': 'scratch',
                     'cpu_encoder': 'random'}, threads=1))
    assert 0 < result['after_build_mib'] <= result['peak_mib'] < 4096


@pytest.mark.parametrize('preset,name,autocast,checkpointed', [
    ('cpu', 'lpd_step_after_bf16', 'bfloat16', False),
    ('paper', 'lpd_step_after_straightforward', None, False),
    ('paper', 'lpd_step_after_chunk_checkpoint_bf16', 'bfloat16', True)])
def test_case_options_set_the_refiner(preset, name, autocast, checkpointed):
    from lpd_bench.bench.cases import case_config, load_config
    spec = case_by_name(preset, name)
    cfg = load_config(osp.join(ROOT, case_config(preset, spec)), spec.cfg_options)
    refiner = cfg.model.decode_head.refiner_loss
    assert refiner.encoder_autocast == autocast and refiner.checkpoint_encoder == checkpointed


def test_rows_of_removed_cases_are_dropped():
    from lpd_bench.bench.harness import current_rows
    rows = [dict(record='env', preset='cpu', case='CPU'),
            dict(record='measure', preset='cpu', case='cam_step'),
            dict(record='measure', preset='cpu', case='lpd_step_after_plain'),  # CPU case removed
            dict(record='measure', preset='paper', case='lpd_step_after_plain')]
    assert [(r['preset'], r['case']) for r in current_rows(rows)] == [
        ('cpu', 'CPU'), ('cpu', 'cam_step'), ('paper', 'lpd_step_after_plain')]

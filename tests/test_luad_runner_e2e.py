"""LUAD-HistoSeg end to end: `lpd-bench run cam lpd --dataset luad --data PATH` with the real
tools on a tiny LUAD-layout generated set and a tiny schedule (slow), then `lpd-bench report`
of that work dir with LUAD-HistoSeg's class names."""
import json

import numpy as np
import pytest
from PIL import Image

from lpd_bench.cli import main
from lpd_bench.data import synthetic
from lpd_bench.data.layouts import LUAD
from lpd_bench.runner.results import load_result

#: Two iterations of batch 2, four test images without TTA, the MiT and the refiner encoder from
#: random weights (as tests/test_runner_real.py): the pipeline, not the methods.
TINY = ('train_cfg.max_iters=2', 'train_dataloader.batch_size=2',
        'val_dataloader.dataset.indices=2', 'test_dataloader.dataset.indices=4',
        'model.test_cfg.flip=False', 'model.test_cfg.intensities=[1.0]',
        'default_hooks.logger.interval=1', 'backbone_init=scratch', 'cpu_encoder=random')
LUAD_NAMES = list(LUAD.classes)


@pytest.mark.slow
def test_luad_benchmark_runs_end_to_end_and_reports_luad_classes(tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.setenv('LPD_BENCH_CACHE', str(tmp_path / 'cache'))
    data = synthetic.write_synthetic_dataset(tmp_path / 'LUAD-HistoSeg', seed=3, n_train=8,
                                             n_val=4, n_test=4, patch_size=64, layout='luad')
    work = tmp_path / 'work'
    status = main(['run', 'cam', 'lpd', '--dataset', 'luad', '--data', str(data), '--work-dir',
                   str(work), '--jobs', '1', '--cfg-options', *TINY])
    out = capsys.readouterr().out
    runs = ('cam__seed0', 'lpd__seed0', 'cam__stage2__seed0', 'lpd__stage2__seed0')
    logs = {run: (work / 'runs' / run / 'run.log') for run in runs}
    assert status == 0, out + ''.join(p.read_text()[-3000:] for p in logs.values()
                                      if p.is_file())
    assert f'4 runs of dataset luad in {work}' in out and '4/4 runs complete' in out
    for method, run_id in (('cam', 'cam__seed0'), ('lpd', 'lpd__seed0')):
        result = load_result(work / 'runs' / run_id)
        assert result['dataset'] == 'luad' and result['data_root'] == str(data)
        assert result['config'] == f'configs/{method}_luad_synth_cpu.py'
        metrics = result['metrics']
        assert metrics['classes'] == LUAD_NAMES and metrics['num_images'] == 4
        assert list(metrics['results']['oracle']['bg_counted']['IoU']) == LUAD_NAMES
        assert result['cost']['stages'][0]['iters'] == 2
        preds = sorted((work / 'runs' / run_id / 'preds').glob('*.png'))
        assert len(preds) == 4 and all(' ' not in p.name and '[' not in p.name for p in preds)
        palette = Image.open(preds[0]).getpalette()[:15]
        assert palette == [v for rgb in LUAD.palette for v in rgb]
    # LPD's specialisation post-stage (k = 10; the generator wrote sub-morphology maps)
    lpd = load_result(work / 'runs' / 'lpd__seed0')
    stage = next(s for s in lpd['cost']['stages'] if s['name'] == 'specialisation')
    measured = json.loads(open(stage['path']).read())
    assert measured['available'] and set(measured['classes']) <= set(LUAD.tissue_classes)
    # measured in the test process, on the tested model: as the standalone command measures it
    assert stage['in_test_process'] and stage['wall_s'] > 0
    from lpd_bench.analysis import specialisation
    standalone = specialisation.main([
        lpd['config'], '--out', str(tmp_path / 'standalone.json'), '--checkpoint',
        lpd['protocol']['checkpoint_path'],
        '--cfg-options', *[f'{k}={v}' for k, v in lpd['cfg_options'].items()]])
    assert json.loads(json.dumps(standalone)) == measured
    maps = np.load(work / 'runs' / 'lpd__seed0' / 'prototype_maps.npz')
    assert maps['maps'].shape[0] == 40
    # each method's stage-2 run: LUAD pseudo-masks of train and val, the LUAD stage-2 network
    # trained on the train ones (2 iterations) and tested with no labels
    for method in ('cam', 'lpd'):
        second = load_result(work / 'runs' / f'{method}__stage2__seed0')
        assert second['stage'] == 2 and second['source_run'] == f'{method}__seed0'
        assert second['config'] == 'configs/stage2_luad_synth_cpu.py'
        assert second['dataset'] == 'luad' and second['data_root'] == str(data)
        assert second['cost']['stages'][1]['iters'] == 2
        assert list(second['metrics']['results']) == ['none']
        assert second['metrics']['classes'] == LUAD_NAMES
        assert second['metrics']['per_image']['names'] == lpd['metrics']['per_image']['names']
        masks = second['pseudo_masks']
        assert masks['train']['images'] == 8 and masks['val']['images'] == 4
        assert 0 <= masks['val']['mIoU'] <= 100
        pngs = sorted((work / 'runs' / f'{method}__stage2__seed0' / 'pseudo_masks' / 'train')
                      .glob('*.png'))
        assert len(pngs) == 8 and set(np.unique(np.asarray(Image.open(pngs[0])))) <= set(range(5))
    # the same run ids planned for BCSS-WSSS in this work dir are refused, not mixed in
    assert main(['run', 'cam', '--data', str(data), '--work-dir', str(work), '--jobs', '1',
                 '--no-stage2', '--cfg-options', *TINY]) == 1
    assert "'dataset': 'luad'" in json.loads(
        (work / 'runs' / 'cam__seed0' / 'failed.json').read_text())['error']
    (work / 'runs' / 'cam__seed0' / 'failed.json').unlink()
    capsys.readouterr()
    # the report of the work dir: LUAD-HistoSeg's class names in the per-class columns
    reports = tmp_path / 'reports'
    assert main(['report', '--work-dir', str(work), '--out', str(reports)]) == 0
    table = (reports / 'main_results.md').read_text()
    header = next(line for line in table.splitlines() if line.startswith('| Gating'))
    assert [c.strip() for c in header.strip('|').split('|')][4:9] == LUAD_NAMES
    assert 'TUM' not in table
    assert any(line.startswith('| stage 2, no labels at test') and '| LPD ' in line
               for line in table.splitlines())
    rows = [line.split('|') for line in table.splitlines() if line.startswith('| oracle')]
    assert {row[4].strip() for row in rows} >= {'CAM', 'LPD'}
    # every row has per-class numbers (a class absent from the 4 test images is '-')
    assert all(any(row[c].strip() not in ('', '-') for c in range(5, 9)) for row in rows)
    assert (reports / 'qualitative.png').is_file() and (reports / 'prototype_maps.png').is_file()
    assert not (reports / 'published.md').exists()

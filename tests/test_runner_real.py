"""The runner with the real tools/train.py and tools/test.py on a tiny schedule (slow)."""
import io

import numpy as np
import pytest
from PIL import Image

from lpd_bench.runner.execute import Executor
from lpd_bench.runner.plan import build_plan
from lpd_bench.runner.progress import Progress
from lpd_bench.runner.results import load_result

#: Two iterations of batch 2, four test images without TTA, the MiT and the refiner encoder from
#: random weights (no pretraining on the default set): the pipeline, not the method.
TINY = {'train_cfg.max_iters': '2', 'train_dataloader.batch_size': '2',
        'val_dataloader.dataset.indices': '2', 'test_dataloader.dataset.indices': '4',
        'model.test_cfg.flip': 'False', 'model.test_cfg.intensities': '[1.0]',
        'default_hooks.logger.interval': '1', 'backbone_init': 'scratch',
        'cpu_encoder': 'random'}


@pytest.fixture(autouse=True)
def no_submorphology(monkeypatch):
    """These runs stand for data without sub-morphology maps (real BCSS-WSSS): LPD's
    specialisation post-stage does not apply (tests/test_analysis_specialisation.py covers it)."""
    from lpd_bench.analysis import specialisation
    monkeypatch.setattr(specialisation, 'has_submorphology', lambda *args, **kwargs: False)


@pytest.mark.slow
def test_same_seed_twice_gives_the_same_metrics_and_snapshots(tmp_path):
    spec = build_plan(['lpd'], seeds=[0], extra_options=TINY)
    first = Executor(tmp_path / 'a', Progress(1, stream=io.StringIO())).run_plan(spec)
    log = tmp_path / 'a' / 'runs' / 'lpd__seed0' / 'run.log'
    assert first == {'lpd__seed0': 'done'}, log.read_text()[-3000:]
    second = Executor(tmp_path / 'b', Progress(1, stream=io.StringIO()), snapshot_images=0)
    assert second.run_plan(build_plan(['lpd'], seeds=[0], extra_options=TINY)) == {
        'lpd__seed0': 'done'}
    a, b = (load_result(tmp_path / w / 'runs' / 'lpd__seed0') for w in 'ab')
    assert a['metrics']['results'] == b['metrics']['results']
    assert a['metrics']['num_images'] == 4
    assert a['cost']['stages'][0]['iters'] == 2 and a['cost']['stages'][0]['params'] > 0
    assert a['protocol']['checkpoint_path'].endswith('iter_2.pth')
    # the CPU preset saves no best-on-val checkpoint before warm-up + one interval (150 > 2)
    assert a['checkpoints']['best'] is None and a['metrics_by_checkpoint']['best'] is None
    assert [s['name'] for s in a['cost']['stages']] == ['train', 'test']
    # tested by the training process itself (tools/train.py --test-after), no test process
    assert a['cost']['stages'][1]['in_training_process']
    assert 'tools/test.py' not in (tmp_path / 'a' / 'runs' / 'lpd__seed0' / 'run.log').read_text()
    # the snapshot step of the first run: 4 label maps and the prototype maps (C*k = 4*10)
    run_dir = tmp_path / 'a' / 'runs' / 'lpd__seed0'
    assert len(list((run_dir / 'preds').glob('*.png'))) == 4
    maps = np.load(run_dir / 'prototype_maps.npz')
    assert maps['maps'].shape[0] == 40 and int(maps['num_per_class']) == 10
    assert not (tmp_path / 'b' / 'runs' / 'lpd__seed0' / 'preds').exists()
    # ... taken in the test process, after the test: no snapshot process of its own, and the
    # same files as the standalone command on the same checkpoint and options
    text = log.read_text()
    assert 'after-test task snapshots: done' in text
    assert 'lpd_bench.runner.snapshots' not in text
    from lpd_bench.runner import snapshots
    options = [f'{k}={v}' for k, v in a['cfg_options'].items()]
    snapshots.main([a['config'], a['protocol']['checkpoint_path'], '--out', str(tmp_path / 'c'),
                    '--num-images', '4', '--cfg-options', *options])
    for png in (run_dir / 'preds').glob('*.png'):
        standalone = np.asarray(Image.open(tmp_path / 'c' / 'preds' / png.name))
        assert np.array_equal(np.asarray(Image.open(png)), standalone), png.name
    np.testing.assert_allclose(np.load(tmp_path / 'c' / 'prototype_maps.npz')['maps'],
                               maps['maps'], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_best_on_val_checkpoint_is_tested_too(tmp_path):
    """Validation and checkpoint every iteration, best from iteration 1 on, lr 0: both
    validations score the same, so the best stays the one of iteration 1 (a strict 'greater'),
    tested as stage test_best; with the same weights, its metrics equal the last's."""
    options = {**TINY, 'train_cfg.val_interval': '1', 'default_hooks.checkpoint.interval': '1',
               'default_hooks.checkpoint.save_best_after': '1', 'optim_wrapper.optimizer.lr': '0'}
    executor = Executor(tmp_path, Progress(1, stream=io.StringIO()), snapshot_images=0)
    assert executor.run_plan(build_plan(['lpd'], seeds=[0], extra_options=options)) == {
        'lpd__seed0': 'done'}
    run_dir = tmp_path / 'runs' / 'lpd__seed0'
    result = load_result(run_dir)
    assert result['checkpoints']['last'].endswith('/iter_2.pth')
    assert result['checkpoints']['best'].endswith('/best_mIoU_iter_1.pth')
    assert sorted(p.name for p in run_dir.glob('*.pth')) == ['best_mIoU_iter_1.pth', 'iter_2.pth']
    assert [s['name'] for s in result['cost']['stages']] == ['train', 'test', 'test_best']
    assert 'reused_from' not in result['cost']['stages'][2]
    best = result['metrics_by_checkpoint']['best']
    assert best['results'] == result['metrics']['results'] and best['num_images'] == 4
    assert (run_dir / 'test_metrics_best.json').is_file()

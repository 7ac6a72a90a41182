"""CAM and PBIP end to end on a tiny generated dataset: stage A bank, stage B and CAM training."""
import json
import os.path as osp
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.pbip import PrototypeBankError
from baselines.pbip import build_bank as stage_a
from baselines.pbip.prototype_bank import training_encoder
from lpd_bench.apis import build_runner, load_config
from lpd_bench.data.filenames import parse_train_label
from lpd_bench.data.synthetic import write_synthetic_dataset

REPO = Path(__file__).resolve().parents[1]

CLASSES = ('TUM', 'STR', 'LYM', 'NEC')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return str(write_synthetic_dataset(tmp_path_factory.mktemp('syn') / 'set', seed=3, n_train=40,
                                       n_val=2, n_test=2, patch_size=64))


def single_label_files(root):
    files = {name: [] for name in CLASSES}
    for path in sorted(Path(root, 'train').glob('*.png')):
        label = parse_train_label(str(path))
        if label.sum() == 1:
            files[CLASSES[int(label.argmax())]].append(str(path))
    return files


def build_bank(root, out, *extra):
    return stage_a.main(['configs/pbip_synth_cpu.py', '--out', str(out), '--batch-size', '8',
                         '--niter', '10', *extra, '--cfg-options', f'data_root={root}',
                         'cpu_encoder=random'])  # a seed-dependent encoder (the checks below)


def test_bank_from_single_label_images_is_deterministic(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    expected = single_label_files(data_root)
    k = min(3, min(map(len, expected.values())))
    assert k >= 1, f'generated set lacks a single-label image of some class: {expected}'
    banks = []
    for name in ('a.pth', 'b.pth'):
        build_bank(data_root, tmp_path / name, '--num-per-class', str(k), '--seed', '5')
        banks.append(torch.load(tmp_path / name, weights_only=True))
    bank = banks[0]
    assert bank['prototypes'].shape == (4 * k, 512)
    torch.testing.assert_close(bank['prototypes'].norm(dim=1), torch.ones(4 * k))
    assert bank['num_classes'] == 4 and bank['num_per_class'] == k and bank['seed'] == 5
    assert bank['classes'] == list(CLASSES)
    assert {c: sorted(map(osp.realpath, v)) for c, v in bank['images'].items()} == {
        c: sorted(map(osp.realpath, v)) for c, v in expected.items()}
    assert bank['encoder']['type'] == 'FrozenImageEncoder'
    assert torch.equal(banks[0]['prototypes'], banks[1]['prototypes'])
    cost = json.loads((tmp_path / 'a.pth.cost.json').read_text())
    assert cost['name'] == 'prototype_bank'
    assert cost['images'] == sum(map(len, expected.values()))
    assert cost['wall_s'] > 0 and cost['peak_rss_mb'] > 0 and cost['images_per_s'] > 0


def test_bank_refuses_too_few_single_label_images(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    too_many = max(map(len, single_label_files(data_root).values())) + 1
    with pytest.raises(PrototypeBankError, match=f'k={too_many} prototypes per class'):
        build_bank(data_root, tmp_path / 'x.pth', '--num-per-class', str(too_many))
    assert not (tmp_path / 'x.pth').exists()


def train_and_test(config, data_root, work_dir, **options):
    """Two iterations of training, then the test loop; returns the test metrics."""
    options = dict(dict(data_root=data_root, cpu_encoder='random'), **options)
    cfg = load_config(config, options, work_dir=str(work_dir), launcher='none')
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.param_scheduler[0].end = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.train_dataloader.batch_size = 2
    cfg.model.decode_head.loss_warmup_iters = 1  # the refiner (PBIP) runs in the second iteration
    runner = build_runner(cfg)
    runner.train()
    return runner, runner.test()


@pytest.mark.slow
def test_cam_trains_and_tests(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    runner, metrics = train_and_test('configs/cam_synth_cpu.py', data_root, tmp_path)
    head = runner.model.decode_head
    assert type(head.prototypes).__name__ == 'StageClassVectors'
    assert head.prototypes.num_per_class == 1
    assert head.diversity_loss is None and head.refiner_loss is None
    assert 0 <= metrics['mIoU'] <= 100 and 0 <= metrics['mDice'] <= 100
    assert osp.isfile(tmp_path / 'cost_train.json')


@pytest.mark.slow
def test_pbip_trains_with_frozen_bank_and_tests(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    bank_path = str(tmp_path / 'bank.pth')
    build_bank(data_root, bank_path, '--num-per-class', '1', '--seed', '7')  # as the runner
    bank = torch.load(bank_path, weights_only=True)['prototypes']
    runner, metrics = train_and_test(
        'configs/pbip_synth_cpu.py', data_root, tmp_path / 'run',
        **{'model.decode_head.prototypes.bank_path': bank_path,
           'model.decode_head.prototypes.num_per_class': 1, 'randomness.seed': 7})
    head = runner.model.decode_head
    assert type(head.prototypes).__name__ == 'ClusteredPrototypes'
    assert head.diversity_loss is None and head.refiner_loss is not None
    torch.testing.assert_close(head.prototypes().cpu(), bank)  # unchanged by training
    # stage A embedded with the very (random, checkpoint-less) encoder stage B trained against
    stage_a = training_encoder(runner.cfg, 1).state_dict()
    stage_b = head.refiner_loss.encoder.state_dict()
    assert stage_a.keys() == stage_b.keys()
    assert all(torch.equal(stage_a[key], stage_b[key].cpu()) for key in stage_a)
    runner.cfg.randomness.seed = 8  # another seed, another random encoder: the check can fail
    other = training_encoder(runner.cfg, 1).state_dict()
    assert not all(torch.equal(other[key], stage_b[key].cpu()) for key in other)
    assert 0 <= metrics['mIoU'] <= 100 and not np.isnan(metrics['mDice'])

"""The second stage end to end, as a user runs it, and its configs.

A stage-1 CAM checkpoint (random weights) -> ``python -m lpd_bench.stage2.pseudo_masks`` on the
tiny generated set's train split -> ``tools/train.py configs/stage2_synth_cpu.py`` for a few
iterations -> ``tools/test.py`` with no labels (the metric's gating ``none``).
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, run, save_untrained_checkpoint

STAGE2_CPU = str(REPO / 'configs' / 'stage2_synth_cpu.py')
STAGE2_PAPER = str(REPO / 'configs' / 'stage2_segformer_b1_bcss.py')
STAGE2_DEEPLAB = str(REPO / 'configs' / 'stage2_deeplabv3plus_bcss.py')
#: A few iterations of batch 2 from a random MiT (no backbone pretraining), checkpoint every 2.
TINY_STAGE2 = ('backbone_init=scratch', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
               'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
               'train_dataloader.batch_size=2', 'val_dataloader.batch_size=4',
               'test_dataloader.batch_size=4')


@pytest.mark.slow
def test_pseudo_masks_train_and_test_a_second_stage_network(tiny_data, tmp_path):
    stage1 = save_untrained_checkpoint(
        REPO / 'configs' / 'cam_synth_cpu.py',
        {'data_root': tiny_data, 'backbone_init': 'scratch', 'cpu_encoder': 'random'},
        tmp_path / 'cam.pth')
    masks = tmp_path / 'pseudo'
    run([sys.executable, '-m', 'lpd_bench.stage2.pseudo_masks', 'configs/cam_synth_cpu.py',
         stage1, '--out', str(masks), '--cfg-options', f'data_root={tiny_data}',
         'backbone_init=scratch', 'cpu_encoder=random'])
    assert json.loads((masks / 'manifest.json').read_text())['num_images'] == 8

    work = tmp_path / 'stage2'
    run([sys.executable, 'tools/train.py', STAGE2_CPU, '--work-dir', str(work), '--cfg-options',
         f'data_root={tiny_data}', f'pseudo_mask_dir={masks}', *TINY_STAGE2])
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_4.pth')

    out = tmp_path / 'metrics.json'
    run([sys.executable, 'tools/test.py', STAGE2_CPU, str(work / 'iter_4.pth'), '--work-dir',
         str(work), '--out', str(out), '--cfg-options', f'data_root={tiny_data}',
         *TINY_STAGE2])
    metrics = json.loads(out.read_text())
    assert metrics['protocol'] == {'stage': 2, 'gating': 'none', 'crf': False, 'tta': None}
    assert list(metrics['results']) == ['none'] and metrics['num_images'] == 4
    assert set(metrics['results']['none']) == {'bg_counted', 'bg_ignored', 'bg_from_gt'}
    block = metrics['results']['none']['bg_counted']
    assert sum(map(sum, block['confusion'])) == 4 * 64 * 64  # full resolution, every pixel
    assert len(metrics['per_image']['confusion']['none']) == 4


def load(config, **options):
    from lpd_bench.apis import load_config
    return load_config(config, options, init_scope=True)


@pytest.mark.parametrize('config', [STAGE2_CPU, STAGE2_PAPER, STAGE2_DEEPLAB])
def test_stage2_configs_are_ordinary_mmseg_models_scored_without_labels(config):
    cfg = load(config)
    assert cfg.default_scope == 'mmseg' and 'lpd_bench' in cfg.custom_imports['imports']
    assert cfg.model.type == 'EncoderDecoder' and cfg.model.decode_head.num_classes == 5
    assert cfg.model.data_preprocessor == cfg.data_preprocessor  # the dataset's normalisation
    assert cfg.train_dataloader.dataset.type == 'PseudoMaskDataset'
    assert 'LoadAnnotations' in [s['type'] for s in cfg.train_dataloader.dataset.pipeline]
    for loader, split in (('val_dataloader', 'val'), ('test_dataloader', 'test')):
        assert cfg[loader].dataset.type == 'BCSSWSSSDataset'
        assert cfg[loader].dataset.split == split
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator.type == 'WSSSMetric' and evaluator.default_protocol.gating == 'none'


@pytest.mark.parametrize('config', [STAGE2_CPU, STAGE2_PAPER, STAGE2_DEEPLAB])
def test_stage2_datasets_build_on_a_pseudo_mask_folder(config, tiny_data, tmp_path):
    from mmseg.registry import DATASETS

    from lpd_bench.data.layouts import BCSS
    from lpd_bench.stage2.mask_folder import write_mask
    for image in sorted(Path(tiny_data, 'train').glob('*.png')):
        write_mask(tmp_path / image.name, np.full((64, 64), 4, np.uint8), BCSS.palette)
    cfg = load(config, data_root=tiny_data, pseudo_mask_dir=str(tmp_path))
    sizes = {name: len(DATASETS.build(cfg[name].dataset))
             for name in ('train_dataloader', 'val_dataloader', 'test_dataloader')}
    assert sizes == {'train_dataloader': 8, 'val_dataloader': 4, 'test_dataloader': 4}


def test_stage2_models_build_with_five_outputs():
    from mmseg.registry import MODELS
    for config, channels in ((STAGE2_PAPER, 256), (STAGE2_DEEPLAB, 512)):
        model = MODELS.build(load(config).model)
        assert model.decode_head.conv_seg.out_channels == 5
        assert model.decode_head.conv_seg.in_channels == channels


def test_segformer_takes_the_imagenet_mit_through_backbone_checkpoint():
    cfg = load(STAGE2_PAPER, backbone_checkpoint='mit_b1.pth')
    assert cfg.model.backbone.init_cfg == {'type': 'PretrainedMiT', 'checkpoint': 'mit_b1.pth'}
    assert load(STAGE2_PAPER).model.backbone.init_cfg is None


def test_cpu_network_starts_from_the_stage1_preset_backbone():
    """Same MiT as the stage-1 CPU preset: the same train-split-pretrained file initialises it."""
    from mmseg.registry import MODELS

    from lpd_bench.models.backbone_pretraining import architecture
    stage2 = load(STAGE2_CPU)
    stage1 = load(str(REPO / 'configs' / 'lpd_synth_cpu.py'))
    assert stage2.model.backbone.init_cfg == stage1.model.backbone.init_cfg
    assert architecture(MODELS.build(stage2.model.backbone)) == architecture(
        MODELS.build(stage1.model.backbone))
    assert load(STAGE2_CPU, backbone_init='scratch').model.backbone.init_cfg is None

"""The second stage end to end, as a user runs it, and its configs, in both dataset layouts.

A stage-1 CAM checkpoint (random weights) -> ``python -m lpd_bench.stage2.pseudo_masks`` on the
tiny generated set's train split -> ``tools/train.py configs/stage2_synth_cpu.py`` (LUAD-HistoSeg
layout: ``stage2_luad_synth_cpu.py``) for a few iterations -> ``tools/test.py`` with no labels
(the metric's gating ``none``).
"""
import json
import os.path as osp
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from helpers import REPO, run, save_untrained_checkpoint

STAGE2_CPU = str(REPO / 'configs' / 'stage2_synth_cpu.py')
STAGE2_PAPER = str(REPO / 'configs' / 'stage2_segformer_b1_bcss.py')
STAGE2_DEEPLAB = str(REPO / 'configs' / 'stage2_deeplabv3plus_bcss.py')
STAGE2_LUAD_CPU = str(REPO / 'configs' / 'stage2_luad_synth_cpu.py')
STAGE2_LUAD_PAPER = str(REPO / 'configs' / 'stage2_segformer_b1_luad.py')
BCSS_CONFIGS = [STAGE2_CPU, STAGE2_PAPER, STAGE2_DEEPLAB]
LUAD_CONFIGS = [STAGE2_LUAD_CPU, STAGE2_LUAD_PAPER]
#: The LUAD-HistoSeg config -> its BCSS-WSSS one (the same network, schedule and scoring).
LUAD_OF = {STAGE2_LUAD_CPU: STAGE2_CPU, STAGE2_LUAD_PAPER: STAGE2_PAPER}
#: The stage-2 config -> an LPD config of its dataset and preset (stage 1's data).
STAGE1_OF = {config: str(REPO / 'configs' / f'lpd_{name}.py') for config, name in (
    (STAGE2_CPU, 'synth_cpu'), (STAGE2_PAPER, 'bcss'), (STAGE2_DEEPLAB, 'bcss'),
    (STAGE2_LUAD_CPU, 'luad_synth_cpu'), (STAGE2_LUAD_PAPER, 'luad'))}
#: A few iterations of batch 2 from a random MiT (no backbone pretraining), checkpoint every 2.
TINY_STAGE2 = ('backbone_init=scratch', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
               'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
               'train_dataloader.batch_size=2', 'val_dataloader.batch_size=4',
               'test_dataloader.batch_size=4')


@pytest.fixture(scope='module')
def tiny_luad_data(tmp_path_factory):
    """A handful of 64 px synthetic patches in the LUAD-HistoSeg layout (read-only, shared)."""
    from lpd_bench.data.synthetic import write_synthetic_dataset
    return str(write_synthetic_dataset(tmp_path_factory.mktemp('data') / 'LUAD-HistoSeg', seed=3,
                                       n_train=8, n_val=4, n_test=4, patch_size=64,
                                       layout='luad'))


def layout_of(config):
    """The dataset layout a stage-2 config reads, its fixture and its classes."""
    from lpd_bench.data.layouts import BCSS, LUAD
    return (LUAD, 'tiny_luad_data') if config in LUAD_CONFIGS else (BCSS, 'tiny_data')


@pytest.mark.slow
@pytest.mark.parametrize('stage1_config, config', [
    ('cam_synth_cpu.py', STAGE2_CPU), ('cam_luad_synth_cpu.py', STAGE2_LUAD_CPU)],
    ids=['bcss', 'luad'])
def test_pseudo_masks_train_and_test_a_second_stage_network(stage1_config, config, request,
                                                            tmp_path):
    layout, fixture = layout_of(config)
    data = request.getfixturevalue(fixture)
    stage1 = save_untrained_checkpoint(
        REPO / 'configs' / stage1_config,
        {'data_root': data, 'backbone_init': 'scratch', 'cpu_encoder': 'random'},
        tmp_path / 'cam.pth')
    masks = tmp_path / 'pseudo'
    run([sys.executable, '-m', 'lpd_bench.stage2.pseudo_masks', f'configs/{stage1_config}',
         stage1, '--out', str(masks), '--cfg-options', f'data_root={data}',
         'backbone_init=scratch', 'cpu_encoder=random'])
    manifest = json.loads((masks / 'manifest.json').read_text())
    assert manifest['num_images'] == 8 and manifest['layout'] == layout.key

    work = tmp_path / 'stage2'
    run([sys.executable, 'tools/train.py', config, '--work-dir', str(work), '--cfg-options',
         f'data_root={data}', f'pseudo_mask_dir={masks}', *TINY_STAGE2])
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_4.pth')

    out = tmp_path / 'metrics.json'
    run([sys.executable, 'tools/test.py', config, str(work / 'iter_4.pth'), '--work-dir',
         str(work), '--out', str(out), '--cfg-options', f'data_root={data}', *TINY_STAGE2])
    metrics = json.loads(out.read_text())
    assert metrics['protocol'] == {'stage': 2, 'gating': 'none', 'crf': False, 'tta': None}
    assert metrics['classes'] == list(layout.classes)
    assert list(metrics['results']) == ['none'] and metrics['num_images'] == 4
    assert set(metrics['results']['none']) == {'bg_counted', 'bg_ignored', 'bg_from_gt'}
    block = metrics['results']['none']['bg_counted']
    assert sum(map(sum, block['confusion'])) == 4 * 64 * 64  # full resolution, every pixel
    assert len(metrics['per_image']['confusion']['none']) == 4


def load(config, **options):
    from lpd_bench.apis import load_config
    return load_config(config, options, init_scope=True)


@pytest.mark.parametrize('config', BCSS_CONFIGS + LUAD_CONFIGS, ids=osp.basename)
def test_stage2_configs_are_ordinary_mmseg_models_scored_without_labels(config):
    cfg = load(config)
    assert cfg.default_scope == 'mmseg' and 'lpd_bench' in cfg.custom_imports['imports']
    assert cfg.model.type == 'EncoderDecoder' and cfg.model.decode_head.num_classes == 5
    assert cfg.model.data_preprocessor == cfg.data_preprocessor  # the dataset's normalisation
    assert cfg.train_dataloader.dataset.type == 'PseudoMaskDataset'
    # stage 1's train pipeline (its augmentation, the CPU preset's resize) with the mask
    stage1 = [s['type'] for s in load(STAGE1_OF[config]).train_dataloader.dataset.pipeline]
    stage2 = [s['type'] for s in cfg.train_dataloader.dataset.pipeline]
    assert stage2 == [stage1[0], 'LoadAnnotations', *stage1[1:-1], 'PackSegInputs']
    dataset_type = 'LUADHistoSegDataset' if config in LUAD_CONFIGS else 'BCSSWSSSDataset'
    for loader, split in (('val_dataloader', 'val'), ('test_dataloader', 'test')):
        assert cfg[loader].dataset.type == dataset_type
        assert cfg[loader].dataset.split == split
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator.type == 'WSSSMetric' and evaluator.default_protocol.gating == 'none'


@pytest.mark.parametrize('config', BCSS_CONFIGS + LUAD_CONFIGS, ids=osp.basename)
def test_stage2_datasets_build_on_a_pseudo_mask_folder(config, request, tmp_path):
    """With the runner's options (data_root, pseudo_mask_dir), every loader reads that folder,
    in the config's layout (its classes)."""
    from mmseg.registry import DATASETS

    from lpd_bench.stage2.mask_folder import write_mask
    layout, fixture = layout_of(config)
    data = request.getfixturevalue(fixture)
    for image in sorted(Path(data, 'train').glob('*.png')):
        write_mask(tmp_path / image.name, np.full((64, 64), 4, np.uint8), layout.palette)
    cfg = load(config, data_root=data, pseudo_mask_dir=str(tmp_path))
    datasets = {name: DATASETS.build(cfg[name].dataset)
                for name in ('train_dataloader', 'val_dataloader', 'test_dataloader')}
    sizes = {name: len(dataset) for name, dataset in datasets.items()}
    assert sizes == {'train_dataloader': 8, 'val_dataloader': 4, 'test_dataloader': 4}
    for dataset in datasets.values():
        assert dataset.data_root == data and dataset.metainfo['classes'] == layout.classes


def test_stage2_models_build_with_five_outputs():
    from mmseg.registry import MODELS
    for config, channels in ((STAGE2_PAPER, 256), (STAGE2_DEEPLAB, 512),
                             (STAGE2_LUAD_PAPER, 256)):
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


@pytest.mark.parametrize('config', LUAD_CONFIGS, ids=osp.basename)
def test_luad_configs_are_their_bcss_configs_on_luad_data(config):
    """Network, schedule and scoring as the BCSS-WSSS config; data from the LUAD switch."""
    luad, bcss = load(config), load(LUAD_OF[config])
    switch = Config.fromfile(str(REPO / 'configs' / '_base_' / 'datasets' /
                                 'luad_histoseg_switch.py'))
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'val_evaluator',
                'test_evaluator', 'default_hooks'):
        assert luad[key] == bcss[key], key
    model = {**luad.model, 'data_preprocessor': bcss.model.data_preprocessor}
    if config == STAGE2_LUAD_CPU:  # the LUAD-layout set's pretrained backbone
        assert luad.model.backbone.init_cfg.layout == switch.luad_layout
        model['backbone'] = {**model['backbone'], 'init_cfg': bcss.model.backbone.init_cfg}
    assert model == bcss.model
    assert luad.train_dataloader.dataset.layout == switch.luad_layout
    if config == STAGE2_LUAD_PAPER:
        assert luad.data_root == switch.luad_data_root
        for key in ('mean', 'std'):
            assert luad.model.data_preprocessor[key] == switch.luad_normalisation[key]


def test_luad_cpu_network_starts_from_the_luad_stage1_preset_backbone():
    stage2 = load(STAGE2_LUAD_CPU)
    stage1 = load(str(REPO / 'configs' / 'lpd_luad_synth_cpu.py'))
    assert stage2.model.backbone.init_cfg == stage1.model.backbone.init_cfg
    assert load(STAGE2_LUAD_CPU, backbone_init='scratch').model.backbone.init_cfg is None
    kept = load(STAGE2_LUAD_CPU, backbone_init='pretrained', data_root='/x')
    assert kept.model.backbone.init_cfg.layout == 'luad'

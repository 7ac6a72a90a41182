"""Every top-level config loads and builds its model and datasets; tool-side config handling."""
import glob
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from helpers import CONFIG, REPO, load_tool

from lpd_bench import apis
from lpd_bench.bench.cases import write_stand_ins
from lpd_bench.data import bcss_meta
from lpd_bench.methods import registered_methods
from mmseg.models.segmentors.base import BaseSegmentor

TOP_LEVEL_CONFIGS = sorted(glob.glob(str(REPO / 'configs' / '*.py')))
#: The second stage's configs (ordinary mmseg networks trained on pseudo-masks) belong to no
#: stage-1 method; tests/test_stage2_e2e.py checks them.
STAGE2_CONFIGS = sorted(glob.glob(str(REPO / 'configs' / 'stage2_*.py')))
METHOD_CONFIGS = [config for config in TOP_LEVEL_CONFIGS if config not in STAGE2_CONFIGS]
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def load(config, *options, work_dir=None):
    """The config as tools/train.py and tools/test.py load it."""
    argv = [config] + (['--cfg-options', *options] if options else [])
    parser = load_tool('train').build_parser()
    args = parser.parse_args(argv + (['--work-dir', work_dir] if work_dir else []))
    return apis.load_config_from_args(args)


def method_of(config):
    """The registered method whose spec names ``config``."""
    name = osp.relpath(config, REPO)
    return next(spec for spec in registered_methods() if name in spec.configs.values())


def test_every_config_belongs_to_a_registered_method_and_vice_versa():
    named = {config for spec in registered_methods() for config in spec.configs.values()}
    assert named == {osp.relpath(config, REPO) for config in METHOD_CONFIGS}


def test_there_are_paper_and_cpu_configs():
    names = {osp.basename(p) for p in TOP_LEVEL_CONFIGS}
    assert {'lpd_bcss.py', 'lpd_synth_cpu.py'} <= names


@pytest.fixture(scope='module')
def tiny_luad_data(tmp_path_factory):
    """A handful of 64 px synthetic patches in the LUAD-HistoSeg layout (read-only, shared)."""
    from lpd_bench.data.synthetic import write_synthetic_dataset
    return str(write_synthetic_dataset(tmp_path_factory.mktemp('data') / 'LUAD-HistoSeg', seed=3,
                                       n_train=8, n_val=4, n_test=4, patch_size=64,
                                       layout='luad'))


@pytest.mark.parametrize('config', METHOD_CONFIGS, ids=osp.basename)
def test_config_builds_model_and_datasets(config, request, tmp_path):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS
    # A LUAD-HistoSeg config reads a set in its layout.
    tiny_data = request.getfixturevalue('tiny_luad_data' if '_luad' in config else 'tiny_data')
    # The CPU preset's pretrained refiner encoder needs single-label images of every class, which
    # the tiny set lacks: its random encoder here (the paper configs' Swin-T has no such switch).
    extra = ('cpu_encoder=random', ) if 'synth_cpu' in config else ()
    cfg = load(config, f'data_root={tiny_data}', *extra)
    assert cfg.default_scope == 'mmseg'
    init_default_scope(cfg.default_scope)
    assert cfg.custom_imports == dict(imports=['lpd_bench', 'baselines'],
                                      allow_failed_imports=False)
    cfg.merge_from_dict(write_stand_ins(method_of(config).name, cfg, tmp_path))  # e.g. a bank
    model = MODELS.build(cfg.model)
    assert isinstance(model, BaseSegmentor)
    for name in LOADERS:
        dataset = DATASETS.build(cfg[name].dataset)
        assert len(dataset) > 0
        assert dataset.data_root == tiny_data


@pytest.mark.parametrize('config', ['lpd_bcss.py', 'lpd_synth_cpu.py'])
def test_normalisation_matches_bcss_meta(config):
    cfg = load(str(REPO / 'configs' / config))
    preprocessor = cfg.model.data_preprocessor
    assert preprocessor.type == 'SegDataPreProcessor'
    assert preprocessor.mean == pytest.approx(bcss_meta.MEAN_BGR_255, abs=1e-6)
    assert preprocessor.std == pytest.approx(bcss_meta.STD_BGR_255, abs=1e-6)
    assert preprocessor.bgr_to_rgb is False


def test_paper_config_values():
    cfg = load(str(REPO / 'configs' / 'lpd_bcss.py'))
    backbone, head = cfg.model.backbone, cfg.model.decode_head
    assert backbone.embed_dims == 64 and backbone.num_heads == [1, 2, 5, 8]
    assert backbone.strides == [4, 2, 2, 1] and backbone.drop_path_rate == 0.1
    assert head.prototypes.num_per_class == 10 and head.prototypes.dim == 512
    assert head.loss_warmup_iters == 3000 and head.diversity_loss.loss_weight == 0.5
    assert cfg.train_dataloader.batch_size == 10 and cfg.randomness.seed == 42
    assert cfg.train_cfg.max_iters == 18744 and cfg.param_scheduler[0].end == 18744
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=5e-5, betas=(0.9, 0.999),
                                               weight_decay=1e-3)
    assert cfg.default_hooks.checkpoint.save_best == 'mIoU'
    assert cfg.data_root == 'data/BCSS-WSSS'
    assert all(cfg[name].dataset.data_root == 'data/BCSS-WSSS' for name in LOADERS)
    # mixed precision and NCCL only where CUDA is: the config must load and run on CPU
    cuda = torch.cuda.is_available()
    assert cfg.optim_wrapper.type == ('AmpOptimWrapper' if cuda else 'OptimWrapper')
    assert cfg.env_cfg.dist_cfg.backend == ('nccl' if cuda else 'gloo')


def test_data_root_option_reaches_every_dataloader(tmp_path):
    cfg = load(CONFIG, f'data_root={tmp_path}')
    assert cfg.data_root == str(tmp_path)
    assert [cfg[name].dataset.data_root for name in LOADERS] == [str(tmp_path)] * 3
    # without the option the config's own value stays (None: the default synthetic set)
    assert load(CONFIG).test_dataloader.dataset.data_root is None


def test_data_root_reaches_wrapped_datasets():
    leaf = dict(type='BCSSWSSSDataset', data_root='a', split='train')
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(type='RepeatDataset', times=2, dataset=leaf)),
        val_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[leaf, leaf])),
        test_dataloader=None))
    apis.set_data_root(cfg, 'b')
    assert cfg.train_dataloader.dataset.dataset.data_root == 'b'
    assert [d.data_root for d in cfg.val_dataloader.dataset.datasets] == ['b', 'b']


def test_checkpoint_options():
    cfg = load(CONFIG, 'encoder_checkpoint=enc.pth', 'backbone_checkpoint=mit_b1.pth',
               'randomness.seed=3')
    assert cfg.model.decode_head.refiner_loss.encoder.checkpoint == 'enc.pth'
    assert cfg.model.backbone.init_cfg == dict(type='PretrainedMiT', checkpoint='mit_b1.pth')
    # the CPU preset's MiT: pretrained once on the train split unless backbone_init=scratch
    assert load(CONFIG).model.backbone.init_cfg.type == 'SyntheticPretrainedBackbone'
    assert load(CONFIG, 'backbone_init=scratch').model.backbone.init_cfg is None
    assert load(CONFIG, 'backbone_init=scratch', 'backbone_checkpoint=mit_b1.pth'
                ).model.backbone.init_cfg.type == 'PretrainedMiT'
    assert cfg.randomness.seed == 3
    with pytest.raises(ValueError, match='no model.decode_head.refiner_loss'):
        load(CONFIG, 'model.decode_head.refiner_loss=None', 'encoder_checkpoint=x.pth')


def test_work_dir_defaults_to_config_name(tmp_path):
    assert load(CONFIG).work_dir == osp.join('./work_dirs', 'lpd_synth_cpu')
    assert load(CONFIG, work_dir=str(tmp_path)).work_dir == str(tmp_path)


def test_test_tool_metrics_file(tmp_path):
    cfg = Config(dict(work_dir=str(tmp_path), test_evaluator=dict(type='WSSSMetric')))
    assert apis.set_metrics_file(cfg, None) == osp.join(str(tmp_path), 'test_metrics.json')
    assert apis.set_metrics_file(cfg, 'x.json') == 'x.json'
    cfg.test_evaluator.output_file = 'runner.json'  # set by --cfg-options: kept
    assert apis.set_metrics_file(cfg, None) == 'runner.json'


def test_bank_path_alias_is_registered_by_the_pbip_package():
    cfg = apis.load_config(str(REPO / 'configs' / 'pbip_synth_cpu.py'), {'bank_path': 'b.pth'})
    assert cfg.bank_path == 'b.pth' and cfg.model.decode_head.prototypes.bank_path == 'b.pth'
    assert apis.CONFIG_ALIASES['bank_path'].__module__ == 'baselines.pbip.clustered_prototypes'
    with pytest.raises(ValueError, match='not ClusteredPrototypes'):
        apis.load_config(CONFIG, {'bank_path': 'b.pth'})


def test_schedule_fraction_shrinks_the_whole_schedule():
    full = apis.load_config(CONFIG)
    cfg = apis.load_config(CONFIG, {'schedule_fraction': 0.25})

    def scaled(iters):  # rounded half up, at least 1; 0 stays 0
        return 0 if iters == 0 else max(1, math.floor(iters * 0.25 + 0.5))

    assert cfg.schedule_fraction == 0.25 and 'schedule_fraction' not in full
    assert cfg.train_cfg.max_iters == scaled(full.train_cfg.max_iters) < full.train_cfg.max_iters
    assert cfg.train_cfg.val_interval == scaled(full.train_cfg.val_interval)
    assert cfg.default_hooks.checkpoint.interval == scaled(full.default_hooks.checkpoint.interval)
    assert cfg.model.decode_head.loss_warmup_iters == scaled(
        full.model.decode_head.loss_warmup_iters)
    assert full.param_scheduler and not any(s.get('by_epoch', True) for s in full.param_scheduler)
    for short, long in zip(cfg.param_scheduler, full.param_scheduler):
        assert (short.begin, short.end) == (scaled(long.begin), scaled(long.end))
    assert cfg.param_scheduler[-1].end == cfg.train_cfg.max_iters  # decays to the new end
    # everything else is the full config's
    unchanged = ('train_cfg', 'param_scheduler', 'default_hooks', 'model', 'schedule_fraction')
    assert {k: v for k, v in cfg.to_dict().items() if k not in unchanged} == {
        k: v for k, v in full.to_dict().items() if k not in unchanged}
    assert apis.load_config(CONFIG, {'schedule_fraction': 1}).train_cfg == full.train_cfg
    tiny = apis.load_config(CONFIG, {'schedule_fraction': 1e-6})
    assert tiny.train_cfg.max_iters == tiny.train_cfg.val_interval == 1  # at least 1
    via_tool = load(CONFIG, 'schedule_fraction=0.25')  # --cfg-options parses the number
    assert via_tool.train_cfg.max_iters == cfg.train_cfg.max_iters


@pytest.mark.parametrize('fraction', [0, 1.5, -0.25, 'quarter', True])
def test_schedule_fraction_outside_0_1_is_refused(fraction):
    with pytest.raises(ValueError, match=f'schedule_fraction={fraction!r}: expected a number in'):
        apis.load_config(CONFIG, {'schedule_fraction': fraction})


def test_register_config_alias_refuses_a_taken_name():
    with pytest.raises(KeyError, match="'data_root' is already registered"):
        apis.register_config_alias('data_root')(lambda cfg, value: None)


def test_load_config_sets_the_default_scope_on_request():
    from mmengine.registry import DefaultScope
    cfg = apis.load_config(CONFIG, {'randomness.seed': 5}, init_scope=True)
    assert cfg.randomness.seed == 5 and DefaultScope.get_current_instance().scope_name == 'mmseg'
    with pytest.raises(FileNotFoundError, match='does not exist'):
        apis.load_config('configs/nope.py')

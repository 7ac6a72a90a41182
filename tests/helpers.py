"""What several test modules share (not a test module: test modules import from here, never from
each other; the fixtures are in conftest.py).

- running the tools: :data:`REPO`, :data:`CONFIG`, :data:`TINY_OPTIONS` (:data:`TINY_SCHEDULE`,
  :data:`TINY_BACKBONE_PRETRAIN`), :func:`load_tool`, :func:`run`, :func:`make_tiny_dataset`,
  :func:`logged_iters`, :func:`checkpoint_iter`;
- the CPU preset's backbone pretraining made cheap in-process: :func:`cheap_backbone_pretraining`;
- a toy MMEngine Runner (mmengine only, no data files): :class:`ToyModel`, :class:`ToyDataset`,
  :class:`ToyMetric`, :func:`toy_runner`;
- tiny model configs and inputs: :func:`tiny_mit`, :func:`tiny_head`, :func:`samples_with_labels`,
  :func:`build_segmentor`, :func:`labelled_samples`, :func:`preprocess`;
- the frozen encoders of the model configs: :data:`SWIN_T_ENCODER`, :data:`CPU_PRESET_ENCODER`;
- fake train/test/bank/snapshot tools for the runner: :func:`make_tools`;
- a stage-1 checkpoint without training: :func:`save_untrained_checkpoint`.
"""
import importlib.util
import json
import os
import subprocess
import textwrap
from pathlib import Path

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from torch.utils.data import Dataset

REPO = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- the tools

#: The CPU preset's LPD config, which the end-to-end tests train.
CONFIG = str(REPO / 'configs' / 'lpd_synth_cpu.py')
#: A few iterations of batch 2, loss warm-up over after 2 of them, checkpoints every 2, log every 1.
TINY_SCHEDULE = (
    'train_cfg.max_iters=4', 'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=2',
    'default_hooks.logger.interval=1', 'model.decode_head.loss_warmup_iters=2',
    'train_dataloader.batch_size=2', 'val_dataloader.batch_size=4',
    'test_dataloader.batch_size=4')
#: :data:`TINY_SCHEDULE` with the MiT from random weights (no backbone pretraining, which the
#: CPU preset otherwise runs on first use: thousands of iterations) and the refiner's random
#: encoder (no encoder pretraining, which needs a single-label train image of every class).
TINY_OPTIONS = TINY_SCHEDULE + ('backbone_init=scratch', 'cpu_encoder=random')
#: With :data:`TINY_SCHEDULE` instead of :data:`TINY_OPTIONS`' last two: the preset's pretrained
#: MiT, pretrained for 2 iterations (give the subprocess its own ``LPD_BENCH_CACHE``).
TINY_BACKBONE_PRETRAIN = ('model.backbone.init_cfg.pretrain.iters=2', 'cpu_encoder=random')


def load_tool(name):
    """tools/<name>.py as a module (the tools directory is not a package)."""
    spec = importlib.util.spec_from_file_location(f'lpd_tools_{name}', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cheap_backbone_pretraining(patch, cache, iters=2):
    """Make this process's CPU-preset backbone pretraining cheap: ``iters`` iterations unless
    the caller gives some, cached under ``cache`` (``patch``: a pytest MonkeyPatch). The real
    functions stay reachable as ``__wrapped__`` (``inspect.unwrap``)."""
    import functools

    from lpd_bench.models import backbone_pretraining as bp
    settings, cache_dir = bp.pretrain_settings, bp.backbone_cache_dir

    @functools.wraps(settings)
    def cheap_settings(**overrides):
        return settings(**{'iters': iters, **overrides})

    @functools.wraps(cache_dir)
    def cheap_cache_dir():
        return Path(cache)

    patch.setattr(bp, 'pretrain_settings', cheap_settings)
    patch.setattr(bp, 'backbone_cache_dir', cheap_cache_dir)


def make_tiny_dataset(root):
    """A handful of 64 px synthetic patches in the BCSS-WSSS layout."""
    from lpd_bench.data.synthetic import write_synthetic_dataset
    return str(write_synthetic_dataset(root, seed=3, n_train=8, n_val=4, n_test=4, patch_size=64))


def run(command, timeout=300, env=None):
    """Run ``command`` from the repository root; fail the test with its output if rc != 0."""
    env = dict(os.environ, **(env or {}), OMP_NUM_THREADS='1')
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert proc.returncode == 0, f'{command} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}'
    return proc


def logged_iters(work_dir):
    """Iterations logged by each run in ``work_dir`` (from LocalVisBackend's scalars.json)."""
    runs = {}
    for stamp in sorted(os.listdir(work_dir)):
        path = Path(work_dir, stamp, 'vis_data', 'scalars.json')
        if path.is_file():
            with open(path) as f:
                runs[stamp] = [rec['iter'] for rec in map(json.loads, f) if 'loss' in rec]
    return list(runs.values())


def checkpoint_iter(path):
    return torch.load(path, map_location='cpu', weights_only=False)['meta']['iter']


# ----------------------------------------------------------------------------- toy Runner

BATCH = 2


class ToyModel(BaseModel):
    """y = w.x + b, plus a frozen layer so trainable and total parameter counts differ."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.frozen = nn.Linear(2, 1).requires_grad_(False)

    def forward(self, inputs, labels=None, mode='tensor'):
        inputs = torch.stack(inputs)  # the default collate gives lists
        out = self.linear(inputs).squeeze(-1) + 0 * self.frozen(inputs).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - torch.stack(labels)) ** 2).mean())
        return list(out)


class ToyDataset(Dataset):
    metainfo = dict(classes=('a', ))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([i / 8, 1.0]), labels=torch.tensor(i / 4))


class ToyMetric(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.extend(float(x) for x in data_samples)

    def compute_metrics(self, results):
        return dict(mean=sum(results) / len(results))


def toy_runner(work_dir, max_iters=2, custom_hooks=(), **kwargs):
    """A Runner on ToyModel/ToyDataset (mmseg scope) that checkpoints every 2 iterations."""
    from mmengine.runner import Runner
    loader = dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler', shuffle=False),
                  batch_size=BATCH, num_workers=0)
    return Runner(
        model=ToyModel(), work_dir=str(work_dir), experiment_name=f'{work_dir.name}_{id(kwargs)}',
        default_scope='mmseg', train_dataloader=loader, test_dataloader=loader,
        test_evaluator=ToyMetric(), test_cfg=dict(type='TestLoop'),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=4)],
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        custom_hooks=list(custom_hooks), randomness=dict(seed=0), **kwargs)


# ----------------------------------------------------------------------------- tiny models

NUM_CLASSES = 4
STAGE_CHANNELS = [16, 32, 80, 128]


def tiny_mit(**kwargs) -> dict:
    """MiT with embed_dims 16 and LPD's strides (4, 2, 2, 1): widths 16, 32, 80, 128."""
    return dict(type='MixVisionTransformer', in_channels=3, embed_dims=16, num_stages=4,
                num_layers=[1, 1, 1, 1], num_heads=[1, 2, 5, 8], patch_sizes=[7, 3, 3, 3],
                strides=[4, 2, 2, 1], sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3),
                mlp_ratio=2, **kwargs)


def tiny_head(**kwargs) -> dict:
    cfg = dict(type='PrototypeHead', in_channels=STAGE_CHANNELS, num_classes=NUM_CLASSES,
               prototypes=dict(type='LearnablePrototypes', num_per_class=3, dim=24),
               proj_hidden=20, stage_loss_weights=[0.0, 0.1, 1.0, 1.0], loss_warmup_iters=0)
    cfg.update(kwargs)
    return cfg


def samples_with_labels(labels) -> list:
    from mmseg.structures import SegDataSample
    return [SegDataSample(metainfo=dict(img_label=list(row), img_path=f'img{i}.png'))
            for i, row in enumerate(labels)]


def build_segmentor(**test_cfg):
    """A tiny WeaklySupervisedSegmentor (tiny MiT and head) in eval mode, ``test_cfg`` as given."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import lpd_bench.models  # noqa: F401  (registers the modules)
    from lpd_bench.data.bcss_meta import MEAN_BGR_255, STD_BGR_255
    init_default_scope('mmseg')  # the data preprocessor is built from mmengine's MODELS
    torch.manual_seed(0)
    model = MODELS.build(
        dict(type='WeaklySupervisedSegmentor',
             data_preprocessor=dict(type='SegDataPreProcessor', mean=list(MEAN_BGR_255),
                                    std=list(STD_BGR_255), bgr_to_rgb=False,
                                    test_cfg=dict(size_divisor=16),
                                    pad_val=0, seg_pad_val=255),
             backbone=tiny_mit(),
             decode_head=tiny_head(),
             test_cfg=test_cfg))
    model.init_weights()
    return model.eval()


def labelled_samples(labels, ori_shape):
    samples = samples_with_labels(labels)
    for sample in samples:
        sample.set_metainfo(dict(ori_shape=ori_shape, img_shape=ori_shape))
    return samples


def preprocess(model, height, width, samples):
    inputs = [torch.randint(0, 256, (3, height, width), dtype=torch.uint8) for _ in samples]
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=False)
    return data['inputs'], data['data_samples']


# ----------------------------------------------------------------------------- encoders


def config_encoder(model_config: str, **variables) -> dict:
    """``model.decode_head.refiner_loss.encoder`` of ``configs/_base_/models/<model_config>``
    (the configs are the one source of the encoders the tests build); ``variables`` override
    the config's own (e.g. ``cpu_encoder='random'``) through its registered aliases."""
    from lpd_bench.apis import apply_cfg_options
    cfg = Config.fromfile(str(REPO / 'configs' / '_base_' / 'models' / model_config))
    if variables:
        cfg.custom_imports = dict(imports=['lpd_bench'], allow_failed_imports=False)
        apply_cfg_options(cfg, variables)
    return cfg.model.decode_head.refiner_loss.encoder.to_dict()


#: The paper setting's frozen encoder (ImageNet Swin-T + fixed random projection; random
#: weights in the tests).
SWIN_T_ENCODER = config_encoder('lpd_mit_b1.py')
#: The CPU preset's cheap frozen encoder (PatchMLPEncoder + fixed projection), random weights
#: (the preset's default pretrains it on the train split: tests/test_encoder_pretraining.py).
CPU_PRESET_ENCODER = config_encoder('lpd_mit_tiny_cpu.py', cpu_encoder='random')


# ----------------------------------------------------------------------------- fake tools

# Fake tools/train.py: one checkpoint per iteration, MMEngine-style progress lines, --resume;
# FAKE_BEST=<n>: a best-on-val checkpoint best_mIoU_iter_<n>.pth as MMEngine names it;
# FAKE_TEST_AFTER=1: honours --test-after (a metric JSON of mIoU 77 and its timing record).
FAKE_TRAIN = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path
    args = sys.argv[1:]
    work = Path(args[args.index('--work-dir') + 1])
    options = dict(o.split('=', 1) for o in args[args.index('--cfg-options') + 1:])
    if 'fail' in options.get('model.decode_head.refiner_loss', ''):
        print('Traceback: boom'); sys.exit(3)
    total, start = int(os.environ.get('FAKE_ITERS', 6)), 0
    if '--resume' in args:
        start = int(Path((work / 'last_checkpoint').read_text()).stem.split('_')[1])
    with open(work / 'starts.txt', 'a') as f:
        f.write(f'{start}\\n')
    (work / 'threads.txt').write_text(os.environ.get('OMP_NUM_THREADS', '-'))
    (work / 'device.txt').write_text(os.environ.get('CUDA_VISIBLE_DEVICES', '-'))
    began = time.time()
    for it in range(start + 1, total + 1):
        time.sleep(float(os.environ.get('FAKE_SLEEP', 0)))
        print(f'Iter(train) [{it:3d}/{total}]  lr: 1e-4  loss: 0.5', flush=True)
        (work / f'iter_{it}.pth').write_text(str(it))
        (work / 'last_checkpoint').write_text(str(work / f'iter_{it}.pth'))
        if it == int(os.environ.get('FAKE_BEST', -1)):
            (work / f'best_mIoU_iter_{it}.pth').write_text(str(it))
    (work / 'interval.txt').write_text(f'{began} {time.time()}')
    (work / 'cost_train.json').write_text(json.dumps(
        {'params': 123, 'totals': {'iters': total, 'wall_s': 0.5}}))
    if os.environ.get('FAKE_TEST_AFTER') and '--test-after' in args:  # tools/train.py's test
        out = Path(args[args.index('--test-after') + 1])
        block = {'IoU': {'TUM': 77.0}, 'mIoU': 77.0, 'mDice': 87.0, 'FwIoU': 77.0}
        out.write_text(json.dumps({'protocol': {'gating': 'oracle'},
                                   'results': {'oracle': {'bg_counted': block}}}))
        Path(f'{out}.timing.json').write_text(json.dumps(
            {'test_wall_s': 0.25, 'after_test_wall_s': 0.0, 'metrics_file': str(out)}))
''')

# Fake tools/test.py: writes a metric JSON whose numbers depend on the seed and the checkpoint;
# appends the checkpoint's name to tested.txt; fails on a checkpoint named in FAKE_TEST_FAIL.
FAKE_TEST = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    args = sys.argv[1:]
    options = dict(o.split('=', 1) for o in args[args.index('--cfg-options') + 1:])
    with open(Path(args[args.index('--work-dir') + 1]) / 'tested.txt', 'a') as f:
        f.write(Path(args[1]).name + '\\n')
    if Path(args[1]).name == os.environ.get('FAKE_TEST_FAIL'):
        print('Traceback: test boom'); sys.exit(4)
    seed, ckpt = int(options['randomness.seed']), Path(args[1]).read_text()
    miou = 50.0 + seed + int(ckpt) / 10
    block = {'IoU': {'TUM': miou}, 'mIoU': miou, 'mDice': miou + 10, 'FwIoU': miou}
    Path(options['test_evaluator.output_file']).write_text(json.dumps({
        'protocol': {'gating': 'oracle', 'tta': True},
        'classes': ['TUM', 'STR', 'LYM', 'NEC', 'BG'],
        'results': {g: {'bg_counted': block, 'bg_ignored': block}
                    for g in ('oracle', 'predicted')}}))
''')

# Fake bank (pre-stage) tool: writes --out and its cost record, logs its arguments.
FAKE_BANK = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path
    time.sleep(float(os.environ.get('FAKE_BANK_SLEEP', 0)))
    out = Path(sys.argv[sys.argv.index('--out') + 1])
    out.write_text('bank')
    Path(f'{out}.cost.json').write_text(json.dumps({'name': 'prototype_bank', 'wall_s': 0.1}))
    with open(out.parent / 'bank_calls.txt', 'a') as f:
        f.write(' '.join(sys.argv[1:]) + '\\n')
''')

# Fake snapshot step: records its arguments in the run dir (``--out``).
FAKE_SNAPSHOT = textwrap.dedent('''
    import sys
    from pathlib import Path
    out = Path(sys.argv[sys.argv.index('--out') + 1])
    (out / 'snapshot_args.txt').write_text(' '.join(sys.argv[1:]))
''')


# Fake `lpd-bench pseudo-masks SOURCE --split train val --score --out ROOT` of the stage-2 runs:
# a manifest per split (val scored: mIoU 40 + seed), its start time in ROOT/../pm_started.txt;
# FAKE_PM_FAIL makes it fail.
FAKE_PSEUDO_MASKS = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path
    args = sys.argv[1:]
    source, root = Path(args[0]), Path(args[args.index('--out') + 1])
    splits = args[args.index('--split') + 1:args.index('--score')]
    (root.parent / 'pm_started.txt').write_text(str(time.time()))
    if os.environ.get('FAKE_PM_FAIL'):
        print('Traceback: pseudo-mask boom'); sys.exit(5)
    seed = int(source.name.rsplit('seed', 1)[1])
    for split in splits:
        (root / split).mkdir(parents=True, exist_ok=True)
        manifest = {'num_images': 3, 'class_frequencies': {'TUM': 1.0},
                    'counts': {'ignored_pixels': 0}, 'threshold': None,
                    'checkpoint': {'sha256': 'abc'},
                    'score': {'mIoU': 40.0 + seed} if split == 'val' else None}
        (root / split / 'manifest.json').write_text(json.dumps(manifest))
''')


def make_tools(tmp_path):
    """The fake tools written under ``tmp_path/tools``, as the executor's ``Tools`` (the
    stage-2 runs' pseudo-mask step included)."""
    from lpd_bench.runner.execute import Tools
    folder = tmp_path / 'tools'
    folder.mkdir()
    for name, text in (('train', FAKE_TRAIN), ('test', FAKE_TEST), ('bank', FAKE_BANK),
                       ('snapshot', FAKE_SNAPSHOT), ('pseudo_masks', FAKE_PSEUDO_MASKS)):
        (folder / f'{name}.py').write_text(text)
    return Tools(train=str(folder / 'train.py'), test=str(folder / 'test.py'),
                 snapshot=[str(folder / 'snapshot.py')], cwd=tmp_path,
                 stages={'pseudo_masks': [str(folder / 'pseudo_masks.py')]})


# ----------------------------------------------------------------------------- refiner encoder

def _register_conv_encoder():
    """Register ``ConvEncoderForTests`` in mmseg's MODELS (the refiner tests' frozen encoder)."""
    import torch.nn.functional as F
    from mmseg.registry import MODELS

    @MODELS.register_module(name='ConvEncoderForTests', force=True)
    class ConvEncoderForTests(nn.Module):
        """Tiny fixed non-linear encoder (N, 3, H, W) -> (N, out_dim) for fast tests."""

        def __init__(self, out_dim=6):
            super().__init__()
            gen = torch.Generator().manual_seed(0)
            self.conv = nn.Conv2d(3, 8, 3, stride=2)
            self.fc = nn.Linear(8, out_dim)
            for p in self.parameters():
                p.data = torch.randn(p.shape, generator=gen)

        def forward(self, x):
            return self.fc(F.gelu(self.conv(x)).mean((2, 3)))
    return ConvEncoderForTests


#: A tiny fixed encoder registered as ``type='ConvEncoderForTests'``.
ConvEncoderForTests = _register_conv_encoder()


# ----------------------------------------------------------------------------- stage-1 checkpoints

def save_untrained_checkpoint(config, cfg_options, path, seed=0):
    """Build ``config``'s model (``cfg_options`` as ``--cfg-options`` gives them), initialise it
    with ``seed`` and save its weights as a checkpoint at ``path``; returns ``str(path)``."""
    from mmseg.registry import MODELS

    from lpd_bench.apis import load_config
    cfg = load_config(str(config), cfg_options, init_scope=True)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {'iter': 0}}, path)
    return str(path)

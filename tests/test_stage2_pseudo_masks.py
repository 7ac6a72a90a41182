"""The pseudo-mask step of the second stage (lpd_bench.stage2.pseudo_masks, mask_folder, commands).

A stage-1 CAM model of the CPU preset (random weights, saved as a checkpoint) writes the
pseudo-masks of the tiny generated set's train and val splits in-process.
"""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lpd_bench.data.bcss_meta import PALETTE as BCSS_PALETTE
from lpd_bench.data.luad_meta import PALETTE as LUAD_PALETTE
from lpd_bench.stage2 import mask_folder, pseudo_masks
from lpd_bench.stage2.mask_folder import (MANIFEST_NAME, PARTIAL_NAME, MaskFolderError,
                                          read_mask)
from lpd_bench.stage2.pseudo_masks import PseudoMaskError, write_pseudo_masks
from lpd_bench.stage2.quality import score_pseudo_masks

from helpers import REPO, save_untrained_checkpoint

CAM_CONFIG = str(REPO / 'configs' / 'cam_synth_cpu.py')
#: The CPU preset without its pretrained weights (random MiT and refiner encoder), batch 4.
BASE_OPTIONS = {'backbone_init': 'scratch', 'cpu_encoder': 'random',
                'test_dataloader.batch_size': 4}


def options(data_root, **extra):
    return dict(BASE_OPTIONS, data_root=str(data_root), **extra)


@pytest.fixture(scope='module')
def cam_checkpoint(tiny_data, tmp_path_factory):
    """A CAM stage-1 checkpoint of the CPU preset (random weights)."""
    return save_untrained_checkpoint(CAM_CONFIG, options(tiny_data),
                                     tmp_path_factory.mktemp('stage1') / 'cam.pth')


@pytest.fixture(scope='module')
def train_masks(tiny_data, cam_checkpoint, tmp_path_factory):
    """(folder, manifest) of the train pseudo-masks, no threshold."""
    out = tmp_path_factory.mktemp('masks') / 'train'
    manifest = write_pseudo_masks(CAM_CONFIG, cam_checkpoint, out, cfg_options=options(tiny_data),
                                  progress=None)
    return out, manifest


def train_images(root):
    return sorted((Path(root) / 'train').glob('*.png'))


def file_name_label(path):
    return [int(c) for c in re.search(r'\[(\d{4})\]\.png$', str(path)).group(1)]


def test_one_palette_mask_per_train_image(tiny_data, train_masks):
    out, manifest = train_masks
    images = train_images(tiny_data)
    assert sorted(p.name for p in out.glob('*.png')) == [p.name for p in images]
    for image in images:
        with Image.open(out / image.name) as mask, Image.open(image) as rgb:
            assert mask.mode == 'P' and mask.size == rgb.size
            assert mask.getpalette()[:15] == [v for rgb in BCSS_PALETTE for v in rgb]
            assert set(np.unique(np.asarray(mask))) <= {0, 1, 2, 3, 4}
    assert not (out / PARTIAL_NAME).exists()
    assert manifest['complete'] and manifest['split'] == 'train' and manifest['layout'] == 'bcss'
    assert manifest['palette'] == [list(rgb) for rgb in BCSS_PALETTE]


def test_manifest_counts_and_frequencies_are_the_masks(train_masks):
    out, manifest = train_masks
    masks = [read_mask(p) for p in sorted(out.glob('*.png'))]
    counts = np.bincount(np.concatenate([m.ravel() for m in masks]), minlength=5)
    classes = ['TUM', 'STR', 'LYM', 'NEC', 'BG']
    assert manifest['num_images'] == len(masks) == 8
    assert manifest['counts']['pixels'] == sum(m.size for m in masks) == 8 * 64 * 64
    assert manifest['counts']['ignored_pixels'] == 0 and manifest['threshold'] is None
    assert manifest['class_pixels'] == dict(zip(classes, counts[:5].tolist()))
    for c, n in zip(classes, counts):
        assert manifest['class_frequencies'][c] == pytest.approx(n / counts.sum())
    assert manifest['images_with_class'] == {
        c: sum(int((m == i).any()) for m in masks) for i, c in enumerate(classes)}


def test_manifest_records_checkpoint_protocol_and_gating(train_masks, cam_checkpoint):
    import hashlib
    _, manifest = train_masks
    digest = hashlib.sha256(Path(cam_checkpoint).read_bytes()).hexdigest()
    assert manifest['checkpoint']['sha256'] == digest
    assert manifest['checkpoint']['path'] == str(Path(cam_checkpoint).resolve())
    assert manifest['checkpoint']['size'] == Path(cam_checkpoint).stat().st_size
    assert manifest['method']['config'] == str(Path(CAM_CONFIG).resolve())
    assert manifest['method']['prototypes'] == 'StageClassVectors'
    protocol = manifest['protocol']
    assert protocol['gating'] == 'oracle' and protocol['crf'] is False
    assert protocol['tta'] == {'flip': True, 'intensities': [0.9, 1.0, 1.1]}
    assert protocol['fusion_weights'] == [0.0, 0.3, 0.3, 0.4]
    assert manifest['gating']['labels'].startswith('image-level labels in the train file names')


def test_train_masks_hold_only_the_classes_of_the_file_name_label(tiny_data, train_masks):
    out, manifest = train_masks
    for image in train_images(tiny_data):
        label = file_name_label(image)
        present = set(np.unique(read_mask(out / image.name)).tolist()) - {4}
        assert present <= {c for c in range(4) if label[c]}, image.name
    assert manifest['counts']['pixels_outside_image_label'] == 0


def test_train_gating_comes_from_the_file_names_and_never_from_a_mask(tiny_data, cam_checkpoint,
                                                                     tmp_path, monkeypatch):
    """Every train image renamed to the label [1000] (TUM only), the val masks corrupted and the
    test split deleted, and mmseg's mask loader made to fail: the masks hold TUM and BG only."""
    root = tmp_path / 'data'
    (root / 'train').mkdir(parents=True)
    for image in train_images(tiny_data):
        shutil.copy(image, root / 'train' / re.sub(r'\[\d{4}\]\.png$', '[1000].png', image.name))
    shutil.copytree(Path(tiny_data) / 'val', root / 'val')
    for mask in (root / 'val' / 'mask').glob('*.png'):
        mask.write_bytes(b'not a png')

    def no_masks(self, results):
        raise AssertionError('LoadAnnotations ran')

    from mmseg.datasets.transforms import LoadAnnotations
    monkeypatch.setattr(LoadAnnotations, 'transform', no_masks)
    out = tmp_path / 'masks'
    manifest = write_pseudo_masks(CAM_CONFIG, cam_checkpoint, out, cfg_options=options(root),
                                  progress=None)
    values = np.concatenate([read_mask(p).ravel() for p in out.glob('*.png')])
    assert set(np.unique(values).tolist()) <= {0, 4}
    assert manifest['num_images'] == 8 and manifest['class_pixels']['TUM'] > 0
    assert manifest['class_pixels']['STR'] == manifest['class_pixels']['NEC'] == 0


def test_the_train_code_path_cannot_read_masks(tiny_data):
    from mmseg.registry import DATASETS

    from lpd_bench.apis import load_config
    cfg = load_config(CAM_CONFIG, options(tiny_data), init_scope=True)
    assert any(step['type'] == 'LoadAnnotations' for step in cfg.test_pipeline)
    dataset_cfg = pseudo_masks.split_dataset_cfg(cfg, 'train')
    assert dataset_cfg['split'] == 'train'
    assert [step['type'] for step in dataset_cfg['pipeline']] == [
        'LoadImageFromFile', 'Resize', 'PackWSSSInputs']
    # a train dataset with a mask loader in its pipeline is refused
    loading = DATASETS.build(dict(dataset_cfg, pipeline=cfg.test_pipeline))
    with pytest.raises(PseudoMaskError, match=r"never read a mask, but the pipeline has "
                       r"\['LoadAnnotations'\]"):
        pseudo_masks.assert_no_masks(loading)
    # ... and so is a train image that names a mask
    dataset = DATASETS.build(dataset_cfg)
    info = dataset.get_data_info(0)
    dataset.get_data_info = lambda i: dict(info, seg_map_path='val/mask/x.png')
    with pytest.raises(PseudoMaskError, match=r'8 train image\(s\) name a mask'):
        pseudo_masks.assert_no_masks(dataset)


def test_threshold_writes_ignore_where_the_winning_score_is_low():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    scores = torch.tensor([[[0.9, 0.2], [0.1, 0.0]],
                           [[0.05, 0.3], [0.5, 0.0]],
                           [[0.0, 0.0], [0.0, 0.45]]])
    sample = SegDataSample()
    sample.seg_logits = PixelData(data=scores)
    sample.pred_sem_seg = PixelData(data=scores.argmax(0, keepdim=True))
    assert pseudo_masks.pseudo_mask(sample, None).tolist() == [[0, 1], [1, 2]]
    assert pseudo_masks.pseudo_mask(sample, 0.4).tolist() == [[0, 255], [1, 2]]
    assert pseudo_masks.pseudo_mask(sample, 0.5).tolist() == [[0, 255], [1, 255]]


def test_threshold_only_removes_pixels_and_is_counted(tiny_data, cam_checkpoint, train_masks,
                                                      tmp_path):
    plain, _ = train_masks
    out = tmp_path / 'masks'
    manifest = write_pseudo_masks(CAM_CONFIG, cam_checkpoint, out, threshold=0.5,
                                  cfg_options=options(tiny_data), progress=None)
    ignored = 0
    for path in sorted(plain.glob('*.png')):
        full, cut = read_mask(path), read_mask(out / path.name)
        kept = cut != 255
        assert np.array_equal(cut[kept], full[kept])
        ignored += int((~kept).sum())
    assert 0 < ignored < manifest['counts']['pixels']
    assert manifest['threshold'] == 0.5 and manifest['counts']['ignored_pixels'] == ignored
    assert manifest['counts']['ignored_fraction'] == pytest.approx(
        ignored / manifest['counts']['pixels'])
    assert manifest['counts']['labelled_pixels'] == manifest['counts']['pixels'] - ignored


def test_a_folder_of_another_run_or_other_files_is_refused(tiny_data, cam_checkpoint, train_masks,
                                                           tmp_path):
    out, manifest = train_masks
    stamp = (out / MANIFEST_NAME).stat().st_mtime_ns
    again = write_pseudo_masks(CAM_CONFIG, cam_checkpoint, out, cfg_options=options(tiny_data),
                               progress=None)
    assert again == manifest and (out / MANIFEST_NAME).stat().st_mtime_ns == stamp
    with pytest.raises(MaskFolderError, match=r'already holds pseudo-masks of another run '
                       r'\(manifest.json: threshold: None there, 0.3 now\)'):
        write_pseudo_masks(CAM_CONFIG, cam_checkpoint, out, threshold=0.3,
                           cfg_options=options(tiny_data), progress=None)
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'notes.txt').write_text('mine')
    with pytest.raises(MaskFolderError, match='is not empty and is not a pseudo-mask folder'):
        write_pseudo_masks(CAM_CONFIG, cam_checkpoint, other, cfg_options=options(tiny_data),
                           progress=None)


def die_after_three_masks(monkeypatch):
    """The pseudo-mask step's mask writer, interrupted (KeyboardInterrupt) at the fourth mask."""
    real_write, written = mask_folder.write_mask, []

    def write_then_die(path, mask, palette):
        if len(written) == 3:
            raise KeyboardInterrupt
        real_write(path, mask, palette)
        written.append(path)

    monkeypatch.setattr(pseudo_masks, 'write_mask', write_then_die)


def test_a_killed_run_leaves_no_manifest_and_the_same_run_resumes(tiny_data, cam_checkpoint,
                                                                  train_masks, tmp_path,
                                                                  monkeypatch):
    out = tmp_path / 'masks'
    die_after_three_masks(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        write_pseudo_masks(CAM_CONFIG, cam_checkpoint, out, cfg_options=options(tiny_data),
                           progress=None)
    assert not (out / MANIFEST_NAME).exists() and (out / PARTIAL_NAME).exists()
    assert len(list(out.glob('*.png'))) == 3
    with pytest.raises(MaskFolderError, match='unfinished pseudo-masks of another run'):
        write_pseudo_masks(CAM_CONFIG, cam_checkpoint, out, threshold=0.2,
                           cfg_options=options(tiny_data), progress=None)
    monkeypatch.setattr(pseudo_masks, 'write_mask', mask_folder.write_mask)
    lines = []
    manifest = write_pseudo_masks(CAM_CONFIG, cam_checkpoint, out, cfg_options=options(tiny_data),
                                  progress=lines.append)
    assert manifest['resumed_images'] == 3 and any('resuming, 3 of 8' in line for line in lines)
    assert any(line.startswith('pseudo-masks train: 5/5 images (100%)') for line in lines)
    _, complete = train_masks
    for key in ('num_images', 'counts', 'class_pixels', 'images_with_class'):
        assert manifest[key] == complete[key]
    assert not (out / PARTIAL_NAME).exists()


def test_val_masks_are_gated_by_the_val_labels_and_scored(tiny_data, cam_checkpoint, tmp_path):
    out = tmp_path / 'val'
    manifest = write_pseudo_masks(CAM_CONFIG, cam_checkpoint, out, split='val', score=True,
                                  cfg_options=options(tiny_data), progress=None)
    gt_dir = Path(tiny_data) / 'val' / 'mask'
    assert sorted(p.name for p in out.glob('*.png')) == sorted(p.name for p in
                                                             gt_dir.glob('*.png'))
    for gt_path in gt_dir.glob('*.png'):
        present = set(np.unique(read_mask(gt_path)).tolist())
        assert set(np.unique(read_mask(out / gt_path.name)).tolist()) - {4} <= present
    assert manifest['gating']['labels'].startswith('image labels of the val dataset')
    assert manifest['score'] == json.loads(json.dumps(score_pseudo_masks(out, tiny_data)))
    assert manifest['score']['mIoU'] == manifest['score']['results']['bg_counted']['mIoU']
    assert json.loads((out / MANIFEST_NAME).read_text())['score'] == manifest['score']


def test_score_needs_the_val_split(tiny_data, cam_checkpoint, tmp_path):
    with pytest.raises(ValueError, match='--score needs --split val'):
        write_pseudo_masks(CAM_CONFIG, cam_checkpoint, tmp_path / 'x', score=True,
                           cfg_options=options(tiny_data), progress=None)
    with pytest.raises(SystemExit) as exit_info:
        pseudo_masks.main([CAM_CONFIG, cam_checkpoint, '--out', str(tmp_path / 'y'), '--score'])
    assert exit_info.value.code == 2


def test_a_model_that_is_not_a_weakly_supervised_segmentor_is_refused(tiny_data, tmp_path):
    config = str(REPO / 'configs' / 'colour_rule_synth_cpu.py')
    with pytest.raises(PseudoMaskError, match="WeaklySupervisedSegmentor .* this config's model "
                       "is 'ColourCentroidSegmentor'"):
        write_pseudo_masks(config, 'unused.pth', tmp_path / 'x',
                           cfg_options={'data_root': tiny_data}, progress=None)


def test_luad_layout_masks_have_the_luad_palette(cam_checkpoint, tmp_path):
    from lpd_bench.data.synthetic import write_synthetic_dataset
    root = write_synthetic_dataset(tmp_path / 'LUAD', seed=3, n_train=4, n_val=2, n_test=2,
                                   patch_size=64, layout='luad')
    out = tmp_path / 'masks'
    manifest = write_pseudo_masks(
        CAM_CONFIG, cam_checkpoint, out, progress=None,
        cfg_options=options(root, **{'test_dataloader.dataset.type': 'LUADHistoSegDataset'}))
    assert manifest['layout'] == 'luad' and manifest['classes'] == ['TE', 'NEC', 'LYM', 'TAS', 'BG']
    with Image.open(next(out.glob('*.png'))) as mask:
        assert mask.getpalette()[:15] == [v for rgb in LUAD_PALETTE for v in rgb]


def test_cli_writes_val_masks_and_their_score(tiny_data, cam_checkpoint, tmp_path, capsys):
    out = tmp_path / 'val'
    assert pseudo_masks.main([CAM_CONFIG, cam_checkpoint, '--out', str(out), '--split', 'val',
                              '--score', '--cfg-options', f'data_root={tiny_data}',
                              'backbone_init=scratch', 'cpu_encoder=random']) == 0
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest['split'] == 'val' and manifest['num_images'] == 4
    printed = capsys.readouterr().out
    assert 'pseudo-masks val: 4/4 images (100%)' in printed
    assert f'mIoU against the val masks {manifest["score"]["mIoU"]:.2f}' in printed
    with pytest.raises(SystemExit, match='already holds pseudo-masks of another run'):
        pseudo_masks.main([CAM_CONFIG, cam_checkpoint, '--out', str(out), '--split', 'val',
                           '--threshold', '0.4', '--cfg-options', f'data_root={tiny_data}',
                           'backbone_init=scratch', 'cpu_encoder=random'])


def test_lpd_bench_pseudo_masks_reads_a_run_directory(tiny_data, cam_checkpoint, tmp_path):
    """A run directory as the runner leaves it: the dumped config, a checkpoint and the
    ``last_checkpoint`` pointer; the masks go to RUN_DIR/pseudo_masks/train."""
    from lpd_bench import cli
    from lpd_bench.apis import load_config
    run_dir = tmp_path / 'runs' / 'cam__seed0'
    run_dir.mkdir(parents=True)
    load_config(CAM_CONFIG, options(tiny_data)).dump(str(run_dir / 'cam_synth_cpu.py'))
    shutil.copy(cam_checkpoint, run_dir / 'iter_4.pth')
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'iter_4.pth'))
    assert cli.main(['pseudo-masks', str(run_dir)]) == 0
    manifest = json.loads((run_dir / 'pseudo_masks' / 'train' / MANIFEST_NAME).read_text())
    assert manifest['source'] == {'run_dir': str(run_dir.resolve()), 'run_id': 'cam__seed0',
                                  'method': None}
    assert manifest['checkpoint']['path'] == str((run_dir / 'iter_4.pth').resolve())
    assert manifest['method']['config'] == str((run_dir / 'cam_synth_cpu.py').resolve())
    assert manifest['num_images'] == 8
    (run_dir / 'iter_4.pth').unlink()
    (run_dir / 'last_checkpoint').unlink()
    with pytest.raises(SystemExit, match='no checkpoint'):
        cli.main(['pseudo-masks', str(run_dir)])


def test_a_test_subset_does_not_shrink_the_pseudo_mask_split(tiny_data):
    """A run tested on a subset (test_dataloader.dataset.indices) still writes a pseudo-mask for
    every train image: the second stage trains on all of them."""
    from lpd_bench.apis import load_config
    cfg = load_config(CAM_CONFIG, {**options(tiny_data), 'test_dataloader.dataset.indices': 2},
                      init_scope=True)
    assert cfg.test_dataloader.dataset.indices == 2
    for split in ('train', 'val'):
        assert 'indices' not in pseudo_masks.split_dataset_cfg(cfg, split)
        assert len(pseudo_masks.build_split_dataset(cfg, split)) > 2


def test_both_splits_in_one_process_never_copy_a_dataset_subset(tiny_data, cam_checkpoint,
                                                               tmp_path, monkeypatch):
    """mmengine's BaseDataset.get_subset shares one deepcopy memo across the process (a second
    subset can come back with a stale object as its pipeline): the pseudo-mask step never uses
    it, also when it resumes a split and then writes the next one in the same process."""
    from argparse import Namespace

    from mmengine.dataset import BaseDataset

    def refuse(self, indices):
        raise AssertionError('get_subset called')

    monkeypatch.setattr(BaseDataset, 'get_subset', refuse)
    whole = write_pseudo_masks(CAM_CONFIG, cam_checkpoint, tmp_path / 'whole',
                               cfg_options=options(tiny_data), progress=None)
    out = tmp_path / 'masks'
    die_after_three_masks(monkeypatch)
    with pytest.raises(KeyboardInterrupt):  # train interrupted after 3 masks
        write_pseudo_masks(CAM_CONFIG, cam_checkpoint, out / 'train',
                           cfg_options=options(tiny_data), progress=None)
    monkeypatch.setattr(pseudo_masks, 'write_mask', mask_folder.write_mask)
    args = Namespace(split=['train', 'val'], threshold=None, cfg_options=options(tiny_data),
                     score=True, device=None)
    manifests = pseudo_masks.run_from_args(args, CAM_CONFIG, cam_checkpoint, out)
    assert manifests['train']['resumed_images'] == 3
    assert manifests['train']['num_images'] == whole['num_images']
    assert manifests['val']['score']['mIoU'] is not None
    for path in (tmp_path / 'whole').glob('*.png'):
        assert np.array_equal(read_mask(out / 'train' / path.name), read_mask(path))

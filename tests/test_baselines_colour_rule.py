"""colour_rule: block features, the fit's centroids and pooled covariance, Mahalanobis nearest
centroid, near-white background, the two gatings, the fit command and tools/test.py end to end."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from PIL import Image

from helpers import REPO, load_tool

from baselines.colour_rule import (ClassStatistics, ColourCentroidSegmentor, ColourRuleError,
                                   RuleSettings, block_features, block_scores, mahalanobis)
from baselines.colour_rule import fit as fit_tool
from baselines.colour_rule.rule import FAR
from lpd_bench.apis import load_config
from lpd_bench.data.filenames import format_train_name, parse_train_label
from lpd_bench.data.synthetic import write_synthetic_dataset
from lpd_bench.methods import get_method
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

CONFIG = 'configs/colour_rule_synth_cpu.py'
CLASSES = ('TUM', 'STR', 'LYM', 'NEC')
BG = 4
SIZE = 64  # hand-made patches: 8 x 8 blocks of 8 px
#: Hand-made class colours (B, G, R); channel 0 is a pixel checkerboard of +-CHECKER around it.
COLOURS = ((40, 30, 170), (170, 90, 220), (150, 40, 60), (110, 160, 120))
CHECKER = 20


def checker_image(colour, size=SIZE) -> np.ndarray:
    """(size, size, 3) uint8 BGR: channels 1, 2 flat; channel 0 alternates colour[0] -+ CHECKER
    from pixel to pixel (block mean colour[0], block standard deviation CHECKER)."""
    image = np.empty((size, size, 3), np.uint8)
    image[:] = colour
    signs = np.indices((size, size)).sum(axis=0) % 2 * 2 - 1
    image[..., 0] = colour[0] + CHECKER * signs
    return image


def white_corner(image, mask=None, side=16):
    image = image.copy()
    image[:side, :side] = 255
    if mask is not None:
        mask = mask.copy()
        mask[:side, :side] = BG
    return image, mask


def write_handmade(root, classes=range(4), corner=False) -> str:
    """A BCSS-WSSS-layout folder of hand-made 64 px patches: per class in ``classes`` two
    single-label train images (``checker_image``, a white 16 px corner with ``corner``), one
    multi-label train image of another colour (must not count), and val/test images of two
    classes side by side with a white corner (background in the mask)."""
    root = Path(root)
    (root / 'train').mkdir(parents=True)
    index = 0
    for c in classes:
        for _ in range(2):
            image = checker_image(COLOURS[c])
            image = white_corner(image)[0] if corner else image
            label = np.eye(4, dtype=int)[c]
            cv2.imwrite(str(root / 'train' / format_train_name('HAND-01', index, label)), image)
            index += 1
    cv2.imwrite(str(root / 'train' / format_train_name('HAND-01', index, [1, 1, 0, 0])),
                np.full((SIZE, SIZE, 3), (0, 255, 0), np.uint8))
    pairs = ((0, 1), (2, 3), (1, 2), (3, 0))
    for split in ('val', 'test'):
        for sub in ('img', 'mask'):
            (root / split / sub).mkdir(parents=True)
        for i, (a, b) in enumerate(pairs):
            image = np.concatenate([checker_image(COLOURS[a])[:, :SIZE // 2],
                                    checker_image(COLOURS[b])[:, SIZE // 2:]], axis=1)
            mask = np.full((SIZE, SIZE), a, np.uint8)
            mask[:, SIZE // 2:] = b
            image, mask = white_corner(image, mask)
            name = f'HAND-02+{i}.png'
            cv2.imwrite(str(root / split / 'img' / name), image)
            Image.fromarray(mask, mode='L').save(root / split / 'mask' / name)
    (root / 'manifest.json').write_text(json.dumps({'patch_size': SIZE}))
    return str(root)


def fit_cli(data_root, out, *options, seed=0):
    """The fit stage's command line, in process, as the runner calls it."""
    return fit_tool.main([CONFIG, '--out', str(out), '--seed', str(seed), '--cfg-options',
                          f'data_root={data_root}', *options])


def fitted_model(centroids, precision=None, **kwargs) -> ColourCentroidSegmentor:
    model = ColourCentroidSegmentor(**kwargs)
    precision = torch.eye(6) if precision is None else precision
    model.load_fit(torch.as_tensor(centroids, dtype=torch.float32), precision)
    return model


def predict_images(model, images, labels=None):
    """``model.predict`` on BGR uint8 images (N, H, W, 3) with optional image labels."""
    inputs = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    size = inputs.shape[2:]
    samples = [SegDataSample(metainfo=dict(ori_shape=size, img_shape=size,
                                           **({} if labels is None else
                                              {'img_label': labels[i]})))
               for i in range(len(images))]
    return model.predict(inputs, samples)


@pytest.fixture(autouse=True)
def repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO)


# ----------------------------------------------------------------------------- features


def test_block_features_are_block_mean_and_std_then_smoothed():
    image = torch.from_numpy(checker_image((100, 50, 200))).permute(2, 0, 1)[None].float()
    features, white = block_features(image, RuleSettings(smoothing=1))
    assert features.shape == (1, 6, 8, 8) and white.shape == (1, 8, 8) and not white.any()
    expected = torch.tensor([100., 50., 200., CHECKER, 0., 0.])
    torch.testing.assert_close(features[0].permute(1, 2, 0), expected.expand(8, 8, 6))
    # 3 x 3 smoothing of a map that is 0 left of column 4 and 9 from it: edge blocks average
    # only the blocks inside the image
    step = torch.zeros(1, 3, SIZE, SIZE)
    step[..., 32:] = 90.0
    smoothed = block_features(step, RuleSettings(smoothing=3))[0][0, 0]
    torch.testing.assert_close(smoothed[0], torch.tensor([0, 0, 0, 30, 60, 90, 90, 90.]))
    torch.testing.assert_close(smoothed[3], smoothed[0])


def test_partial_blocks_use_the_pixels_they_have():
    image = torch.zeros(1, 3, 10, 12)
    image[..., 8:, :] = 60.0  # the last block row holds 2 pixel rows, all 60
    features, _ = block_features(image, RuleSettings(smoothing=1))
    assert features.shape == (1, 6, 2, 2)
    torch.testing.assert_close(features[0, :3, 1], torch.full((3, 2), 60.0))
    torch.testing.assert_close(features[0, 3:, 1], torch.zeros(3, 2))


def test_near_white_blocks():
    image = torch.full((1, 3, 32, 32), 100.0)
    image[..., :8, :8] = 255.0
    image[..., :8, 8:16] = 226.0
    image[..., :8, 16:24] = torch.tensor([255.0, 255.0, 160.0])[:, None, None]  # mean 223.3
    white = block_features(image, RuleSettings(smoothing=1))[1][0]
    assert white[0].tolist() == [True, True, False, False] and not white[1:].any()
    # white_on='smoothed' reads the smoothed colour mean: a lone white block among tissue is not
    lone = torch.full((1, 3, 24, 24), 100.0)
    lone[..., 8:16, 8:16] = 255.0
    assert block_features(lone, RuleSettings(white_on='block'))[1][0, 1, 1]
    assert not block_features(lone, RuleSettings(white_on='smoothed'))[1][0, 1, 1]


def test_bad_settings_are_refused():
    with pytest.raises(ColourRuleError, match='odd'):
        RuleSettings(smoothing=2)
    with pytest.raises(ColourRuleError, match='white_on'):
        RuleSettings(white_on='pixel')


# ----------------------------------------------------------------------------- statistics


def test_pooled_covariance_is_the_within_class_covariance():
    gen = torch.Generator().manual_seed(0)
    stats = ClassStatistics(CLASSES)
    rows = {c: torch.randn(1, 6, 3, 5, generator=gen) * (c + 1) + 10 * c for c in range(4)}
    for c, features in rows.items():
        stats.add(features, torch.zeros(1, 3, 5, dtype=torch.bool), c)
    flat = {c: f[0].reshape(6, -1).T.double() for c, f in rows.items()}
    centred = torch.cat([x - x.mean(dim=0) for x in flat.values()])
    expected = centred.T @ centred / (len(centred) - 4) + 1e-3 * torch.eye(6, dtype=torch.float64)
    fit = stats.fit(1e-3)
    torch.testing.assert_close(fit['centroids'],
                               torch.stack([x.mean(dim=0) for x in flat.values()]))
    torch.testing.assert_close(fit['covariance'], expected)
    torch.testing.assert_close(fit['precision'] @ expected, torch.eye(6, dtype=torch.float64))


def test_a_class_without_single_label_images_is_named():
    stats = ClassStatistics(CLASSES)
    stats.add(torch.ones(2, 6, 2, 2), torch.zeros(2, 2, 2, dtype=torch.bool), 0)
    stats.add(torch.ones(1, 6, 2, 2), torch.ones(1, 2, 2, dtype=torch.bool), 1)  # all white
    with pytest.raises(ColourRuleError, match='class LYM, NEC'):
        stats.fit()
    stats.add(torch.ones(1, 6, 2, 2), torch.zeros(1, 2, 2, dtype=torch.bool), 2)
    stats.add(torch.ones(1, 6, 2, 2), torch.zeros(1, 2, 2, dtype=torch.bool), 3)
    with pytest.raises(ColourRuleError, match='class STR are near-white everywhere'):
        stats.fit()


# ----------------------------------------------------------------------------- classification


def test_mahalanobis_nearest_centroid_differs_from_euclidean():
    covariance = torch.eye(6)
    covariance[0, 1] = covariance[1, 0] = 0.9  # features 0 and 1 strongly correlated
    precision = torch.linalg.inv(covariance)
    centroids = torch.zeros(2, 6)
    centroids[1, 0] = 2.0
    x = torch.zeros(1, 6, 1, 1)
    x[0, :2, 0, 0] = torch.tensor([1.2, 1.2])
    distances = mahalanobis(x, centroids, precision)[0, :, 0, 0]
    diffs = x[0, :, 0, 0] - centroids
    expected = torch.stack([(d @ precision @ d).sqrt() for d in diffs])
    torch.testing.assert_close(distances, expected)
    assert distances.argmin() == 0  # Mahalanobis: class 0 (1.23 against 4.48)
    assert diffs.norm(dim=1).argmin() == 1  # Euclidean would say class 1
    scores = block_scores(distances[None, :, None, None], torch.zeros(1, 1, 1, dtype=torch.bool),
                          torch.ones(1, 2))
    assert scores.shape == (1, 3, 1, 1) and scores.argmax(dim=1).item() == 0


def test_white_blocks_are_background_and_gating():
    model = fitted_model([[40, 30, 170, 0, 0, 0], [170, 90, 220, 0, 0, 0],
                          [150, 40, 60, 0, 0, 0], [110, 160, 120, 0, 0, 0]])
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[:] = COLOURS[0]  # flat TUM colour
    image, _ = white_corner(image)
    oracle_labels = [[0, 1, 0, 0], [0, 0, 0, 0]]  # the label says STR only; then no class at all
    samples = predict_images(model, [image, image], oracle_labels)
    for sample, label in zip(samples, oracle_labels):
        none = sample.pred_sem_seg_none.data[0]
        oracle = sample.pred_sem_seg_oracle.data[0]
        assert (none[:8, :8] == BG).all() and (oracle[:8, :8] == BG).all()  # white blocks
        assert (none[24:, 24:] == 0).all()  # no labels: the nearest class, TUM
        allowed = {c for c in range(4) if label[c]} | {BG}
        assert set(oracle.unique().tolist()) <= allowed  # never a class outside the label
        assert torch.equal(sample.pred_sem_seg.data, sample.pred_sem_seg_oracle.data)
        logits = sample.seg_logits.data
        assert logits.shape == (5, SIZE, SIZE)
        assert torch.equal(logits.argmax(dim=0), oracle)
        assert (logits[BG, :8, :8] == FAR).all() and (logits[BG, 16:, 16:] == -FAR).all()
        assert sample.metainfo['protocol']['method'] == 'colour_rule'
    assert (samples[0].pred_sem_seg_oracle.data[0][16:, 16:] == 1).all()
    assert (samples[1].pred_sem_seg_oracle.data[0] == BG).all()  # empty label: background


def test_gating_none_needs_no_labels_and_oracle_does():
    model = fitted_model(torch.rand(4, 6) * 255)
    image = checker_image(COLOURS[2])
    with pytest.raises(KeyError, match='img_label'):
        model.predict(torch.zeros(1, 3, 16, 16),
                      [SegDataSample(metainfo=dict(ori_shape=(16, 16), img_shape=(16, 16)))])
    none_model = fitted_model(torch.rand(4, 6) * 255, test_cfg=dict(gating='none'))
    sample = predict_images(none_model, [image])[0]
    assert 'pred_sem_seg_none' in sample and 'pred_sem_seg_oracle' not in sample
    assert torch.equal(sample.pred_sem_seg.data, sample.pred_sem_seg_none.data)
    assert sample.metainfo['protocol']['gating'] == 'none'


def test_unfitted_or_mismatched_model_and_training_are_refused():
    with pytest.raises(ColourRuleError, match='no fitted centroids'):
        ColourCentroidSegmentor().predict(torch.zeros(1, 3, 16, 16))
    model = fitted_model(torch.zeros(4, 6))
    model.fit_settings[0] = 16
    with pytest.raises(ColourRuleError, match="fitted with .*'block_size': 16"):
        model.predict(torch.zeros(1, 3, 16, 16))
    with pytest.raises(RuntimeError, match='fitted, not trained'):
        model.loss(torch.zeros(1, 3, 16, 16), [])
    with pytest.raises(ValueError, match='no CRF'):
        ColourCentroidSegmentor(test_cfg=dict(crf=True))
    with pytest.raises(ValueError, match='gating must be one of'):
        ColourCentroidSegmentor(test_cfg=dict(gating='predicted'))


def test_normalising_preprocessor_is_undone():
    init_default_scope('mmseg')
    centroids = torch.tensor([[c[0], c[1], c[2], CHECKER, 0, 0] for c in COLOURS]).float()
    plain = fitted_model(centroids, smoothing=1)
    normalising = fitted_model(centroids, smoothing=1, data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[170.3, 121.9, 180.1], std=[44.3, 57.5, 50.5]))
    image = checker_image(COLOURS[3])
    raw = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    normalised = (raw - normalising.data_preprocessor.mean) / normalising.data_preprocessor.std
    torch.testing.assert_close(normalising.extract_feat(normalised)[0], plain.extract_feat(raw)[0],
                               rtol=1e-4, atol=1e-3)


def test_configs_never_train():
    from mmengine.optim import build_optim_wrapper
    init_default_scope('mmseg')
    cfg = load_config(CONFIG)
    model = MODELS.build(cfg.model)
    assert list(model.parameters()) == []
    with pytest.raises(RuntimeError, match='fitted, not trained'):
        build_optim_wrapper(model, cfg.optim_wrapper)


def test_registry_entry():
    spec = get_method('colour_rule')
    assert spec.checkpoint_stage == 'fit' and spec.pre_stages[0].config_key is None
    assert spec.pre_stages[0].command == ('-m', 'baselines.colour_rule.fit')
    for preset, config in spec.configs.items():
        cfg = Config.fromfile(str(REPO / config))
        assert cfg.model.type == 'ColourCentroidSegmentor'
        assert cfg.test_evaluator.type == 'WSSSMetric'
        assert cfg.test_dataloader.dataset.split == 'test'
        assert not any(t['type'] == 'Resize' for t in cfg.test_dataloader.dataset.pipeline)
    text = (REPO / spec.readme).read_text()
    assert '<!-- lpd-bench report: results (generated, do not edit) -->' in text
    assert '<!-- lpd-bench report: end of results -->' in text


# ----------------------------------------------------------------------------- the fit command


def test_fit_gives_the_known_centroids_of_hand_made_images(tmp_path):
    root = write_handmade(tmp_path / 'hand')
    out = tmp_path / 'fit.pth'
    fit_cli(root, out, seed=4)
    checkpoint = torch.load(out, weights_only=True)
    expected = torch.tensor([[c[0], c[1], c[2], CHECKER, 0, 0] for c in COLOURS])
    torch.testing.assert_close(checkpoint['state_dict']['centroids'], expected.float())
    # every class's blocks are identical: only the ridge is left of the pooled covariance
    torch.testing.assert_close(checkpoint['state_dict']['precision'], torch.eye(6) / 1e-3)
    meta = checkpoint['meta']
    assert meta['images_per_class'] == dict.fromkeys(CLASSES, 2)  # the multi-label one left out
    assert meta['blocks_per_class'] == dict.fromkeys(CLASSES, 2 * 64)
    assert meta['seed'] == 4 and meta['block_size'] == 8 and meta['white_on'] == 'smoothed'
    cost = json.loads(Path(f'{out}.cost.json').read_text())
    assert cost['name'] == 'fit' and cost['images'] == 8 and cost['wall_s'] > 0


def test_fit_leaves_near_white_blocks_out(tmp_path):
    root = write_handmade(tmp_path / 'hand', corner=True)
    out = tmp_path / 'fit.pth'
    fit_cli(root, out, 'model.smoothing=1')  # no smoothing: the white corner stays apart
    checkpoint = torch.load(out, weights_only=True)
    expected = torch.tensor([[c[0], c[1], c[2], CHECKER, 0, 0] for c in COLOURS])
    torch.testing.assert_close(checkpoint['state_dict']['centroids'], expected.float())
    assert checkpoint['meta']['blocks_per_class'] == dict.fromkeys(CLASSES, 2 * (64 - 4))


def test_fit_without_single_label_images_of_a_class_names_it(tmp_path):
    root = write_handmade(tmp_path / 'hand', classes=(0, 1, 2))
    with pytest.raises(ColourRuleError, match='no single-label training image of class NEC'):
        fit_cli(root, tmp_path / 'fit.pth')
    assert not (tmp_path / 'fit.pth').exists()


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope='module')
def generated_data(tmp_path_factory):
    """A tiny generated set; a class the draw left without a single-label train image gets a
    hand-made one (the fit needs one per class)."""
    root = write_synthetic_dataset(tmp_path_factory.mktemp('colour') / 'set', seed=5, n_train=12,
                                   n_val=2, n_test=4, patch_size=SIZE)
    labels = [parse_train_label(p) for p in sorted(Path(root, 'train').glob('*.png'))]
    single = {int(label.argmax()) for label in labels if label.sum() == 1}
    for c in sorted(set(range(4)) - single):
        name = format_train_name('HAND-01', c, np.eye(4, dtype=int)[c])
        cv2.imwrite(str(Path(root, 'train', name)), checker_image(COLOURS[c]))
    return str(root)


def test_fit_then_tools_test_end_to_end(generated_data, tmp_path):
    out = tmp_path / 'fits' / 'fit.pth'
    out.parent.mkdir()
    fit_cli(generated_data, out)
    metrics_file = tmp_path / 'metrics.json'
    load_tool('test').main([CONFIG, str(out), '--work-dir', str(tmp_path / 'work'), '--out',
                            str(metrics_file), '--cfg-options', f'data_root={generated_data}'])
    result = json.loads(metrics_file.read_text())
    assert set(result['results']) == {'oracle', 'none'}
    assert result['num_images'] == 4 and result['protocol']['method'] == 'colour_rule'
    for variant in ('oracle', 'none'):
        assert 0 <= result['results'][variant]['bg_counted']['mIoU'] <= 100
    assert (tmp_path / 'work' / 'cost_test.json').is_file()

    # oracle gating never predicts a tissue class outside the image label
    cfg = load_config(CONFIG, dict(data_root=generated_data), init_scope=True)
    model = MODELS.build(cfg.model).eval()
    load_checkpoint(model, str(out), map_location='cpu')
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate([dataset[i] for i in range(len(dataset))]))
        samples = model.predict(data['inputs'], data['data_samples'])
    for sample in samples:
        allowed = {c for c, v in enumerate(sample.metainfo['img_label']) if v} | {BG}
        assert set(sample.pred_sem_seg_oracle.data.unique().tolist()) <= allowed
        assert sample.seg_logits.data.shape == (5, SIZE, SIZE)


def test_handmade_test_split_is_segmented(tmp_path):
    """On the hand-made set the rule is right away from the class borders and the white corner."""
    root = write_handmade(tmp_path / 'hand')
    out = tmp_path / 'fit.pth'
    fit_cli(root, out)
    cfg = load_config(CONFIG, dict(data_root=root), init_scope=True)
    model = MODELS.build(cfg.model).eval()
    load_checkpoint(model, str(out), map_location='cpu')
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    data = model.data_preprocessor(pseudo_collate([dataset[i] for i in range(len(dataset))]))
    for sample in model.predict(data['inputs'], data['data_samples']):
        gt = sample.gt_sem_seg.data[0]
        for variant in ('oracle', 'none'):
            pred = sample.get(f'pred_sem_seg_{variant}').data[0]
            inner = torch.zeros_like(gt, dtype=torch.bool)  # blocks whose 3 x 3 window is pure
            inner[24:, :SIZE // 2 - 8] = inner[24:, SIZE // 2 + 8:] = True
            assert torch.equal(pred[inner], gt[inner])
        assert (sample.pred_sem_seg_oracle.data[0][:8, :8] == BG).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_gives_the_cpu_prediction():
    gen = torch.Generator().manual_seed(0)
    model = fitted_model(torch.rand(4, 6, generator=gen) * 255)
    images = [np.random.default_rng(i).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
              for i in range(2)]
    labels = [[1, 0, 1, 0], [0, 1, 1, 1]]
    cpu = predict_images(model, images, labels)
    model = model.cuda()
    inputs = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().cuda()
    samples = [SegDataSample(metainfo=dict(ori_shape=(SIZE, SIZE), img_shape=(SIZE, SIZE),
                                           img_label=label)) for label in labels]
    cuda = model.predict(inputs, samples)
    for a, b in zip(cpu, cuda):
        for key in ('pred_sem_seg_oracle', 'pred_sem_seg_none'):
            assert torch.equal(a.get(key).data, b.get(key).data.cpu())

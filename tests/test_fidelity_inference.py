"""Fidelity of the test-time path to the public LPD code (issue 10), on hand-computable cases.

Each test pins one item of docs/protocol.md, section 1 (Inference) to numbers written from its
formula:
per-pixel merge of a class's k maps, predicted gating on the mean-merged stage-4 score, intensity
TTA on the normalised tensor, align_corners=True upsampling, min-max eps 1e-6, the public DenseCRF
parameters and unary, and the protocol record. The earlier behaviours stay reachable through their
named options and are checked here too.
"""
import math
import os.path as osp
import sys
import types

import numpy as np
import pytest
import torch
from mmseg.registry import MODELS
from helpers import NUM_CLASSES, build_segmentor, labelled_samples, preprocess, tiny_head

import lpd_bench.models  # noqa: F401  (registers the modules)
from lpd_bench.models.crf import CRF_PRESETS, crf_unary, dense_crf, run_dense_crf
from lpd_bench.models.gating import DEFAULT_GRID, choose_gating_threshold, per_class_f1
from lpd_bench.models.inference import (InferenceProtocol, add_background, fuse_stage_maps,
                                        normalize_class_maps, tta_views, upsample_maps)
from lpd_bench.models.prototype_head import (PrototypeOutputs, merge_maps, merge_scores,
                                             merge_subclass_cams_to_parent, merge_weights)


REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# ---------------------------------------------------------------- 1. per-pixel merge of k maps

def two_half_maps():
    """One class, k = 2, a 1 x 8 strip: prototype 0 lights the left half of the region (pixels
    0-1) at 10, prototype 1 the right half (pixels 2-3) at 5; pixels 4-7 are background (0)."""
    maps = torch.zeros(1, 2, 1, 8)
    maps[0, 0, 0, :2] = 10.0
    maps[0, 1, 0, 2:4] = 5.0
    return maps


def test_per_pixel_merge_is_softmax_over_the_k_maps_at_each_pixel():
    merged = merge_subclass_cams_to_parent(two_half_maps(), num_classes=1, method='max')
    # m(x) = sum_j softmax_j(s_j(x)) s_j(x): (10, 0) -> 10 * sigmoid(10); (0, 5) -> 5 * sigmoid(5)
    expected = torch.tensor([10 * sigmoid(10)] * 2 + [5 * sigmoid(5)] * 2 + [0.0] * 4)
    torch.testing.assert_close(merged[0, 0, 0], expected)
    torch.testing.assert_close(merge_subclass_cams_to_parent(two_half_maps(), 1, 'mean')[0, 0, 0],
                               torch.tensor([5.0, 5, 2.5, 2.5, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="'max' or 'mean'"):
        merge_subclass_cams_to_parent(two_half_maps(), 1, 'softmax')


def test_both_halves_survive_the_per_pixel_merge_and_per_image_weights_lose_one():
    maps = two_half_maps()
    per_pixel = merge_subclass_cams_to_parent(maps, 1, 'max')
    # per image: pooled scores 20/8 and 10/8 -> weights (sigmoid(1.25), sigmoid(-1.25)) everywhere
    weights = merge_weights(maps.mean(dim=(2, 3)), 1, 'softmax')
    torch.testing.assert_close(weights[0, 0], torch.tensor([sigmoid(1.25), sigmoid(-1.25)]))
    per_image = merge_maps(maps, weights)
    torch.testing.assert_close(per_image[0, 0, 0, 2], torch.tensor(5 * sigmoid(-1.25)))

    def labels(class_map):  # normalise, background (1 - max)^10, argmax: 0 = class, 1 = BG
        return add_background(normalize_class_maps(class_map), 10).argmax(dim=1)[0, 0].tolist()

    # right half after min-max: per pixel 5 s(5) / 10 s(10) = 0.497 > BG (1 - 0.497)^10 = 0.001;
    # per image 5 s(-1.25) / (10 s(1.25)) = 0.144 < BG (1 - 0.144)^10 = 0.211: lost
    assert labels(per_pixel) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert labels(per_image) == [0, 0, 1, 1, 1, 1, 1, 1]


def test_head_predict_class_maps_merges_per_pixel_by_default_per_image_as_option():
    torch.manual_seed(0)
    head = MODELS.build(tiny_head()).eval()
    feats = [torch.randn(2, c, s, s) for c, s in zip((16, 32, 80, 128), (8, 4, 2, 2))]
    sims = head(feats).sim_maps
    maps, _ = head.predict_class_maps(feats, stages=[1, 3])
    torch.testing.assert_close(maps[1], merge_subclass_cams_to_parent(sims[1], NUM_CLASSES))
    torch.testing.assert_close(maps[3], merge_subclass_cams_to_parent(sims[3], NUM_CLASSES))
    old, _ = head.predict_class_maps(feats, stages=[1], map_merge='per_image')
    weights = merge_weights(sims[1].mean(dim=(2, 3)), NUM_CLASSES, 'softmax')
    torch.testing.assert_close(old[1], merge_maps(sims[1], weights))
    with pytest.raises(ValueError, match='map_merge'):
        head.predict_class_maps(feats, stages=[1], map_merge='max')


# ---------------------------------------------------- 2. predicted gating on the mean-merged score

def fixed_head(last_map):
    """A head whose forward returns ``last_map`` as the stage-4 similarity map."""
    head = MODELS.build(tiny_head(prototypes=dict(type='LearnablePrototypes', num_per_class=2,
                                                  dim=24)))

    def forward(feats, stages=None, prototype_stages=()):
        sims = [None] * 4
        sims[3] = last_map
        return PrototypeOutputs(sims, [None] * 4, None)
    head.forward = forward
    return head


def test_gating_probability_is_sigmoid_of_the_mean_merged_stage4_score():
    # class 0: prototype scores (2, -4); classes 1..3: (0, 0). Constant maps: score = map value.
    scores = torch.tensor([[2.0, -4.0, 0, 0, 0, 0, 0, 0]])
    head = fixed_head(scores[:, :, None, None].expand(1, 8, 2, 2).clone())
    _, mean_probs = head.predict_class_maps([None] * 4, stages=[3])
    _, soft_probs = head.predict_class_maps([None] * 4, stages=[3], gating_score='softmax')
    # mean merge: (2 - 4) / 2 = -1 -> sigmoid(-1) = 0.269: absent at threshold 0.5
    torch.testing.assert_close(mean_probs[0], torch.tensor([sigmoid(-1), 0.5, 0.5, 0.5]))
    # softmax merge: 2 sigmoid(6) - 4 sigmoid(-6) = 1.985 -> 0.879: present at 0.5
    soft = 2 * sigmoid(6) - 4 * sigmoid(-6)
    torch.testing.assert_close(soft_probs[0], torch.tensor([sigmoid(soft), 0.5, 0.5, 0.5]))
    assert (mean_probs[0, 0] > 0.5).item() is False and (soft_probs[0, 0] > 0.5).item() is True


def test_gating_probability_without_a_stage4_map_uses_pooled_scores():
    torch.manual_seed(0)
    head = MODELS.build(tiny_head()).eval()
    feats = [torch.randn(2, c, s, s) for c, s in zip((16, 32, 80, 128), (8, 4, 2, 2))]
    _, probs = head.predict_class_maps(feats, stages=[1])  # stage 4 not asked for: no map
    scores = head(feats).sim_maps[3].mean(dim=(2, 3))
    expected = merge_scores(scores, merge_weights(scores, NUM_CLASSES, 'mean')).sigmoid()
    torch.testing.assert_close(probs, expected)


def test_segmentor_gating_probabilities_are_view_averaged_mean_merged_sigmoids():
    model = build_segmentor()
    inputs, _ = preprocess(model, 32, 32, labelled_samples([[1, 0, 1, 0]] * 2, (32, 32)))
    with torch.no_grad():
        _, probs = model.class_activation(inputs)
        views, _ = tta_views(inputs, True, (0.9, 1.0, 1.1))
        scores = model._forward(views).sim_maps[3].mean(dim=(2, 3))
        per_view = merge_scores(scores, merge_weights(scores, NUM_CLASSES, 'mean')).sigmoid()
    torch.testing.assert_close(probs, per_view.view(6, 2, NUM_CLASSES).mean(0))


def test_predicted_gating_thresholds_the_configured_threshold():
    model = build_segmentor(gating_threshold=0.3)
    probs = torch.tensor([[0.29, 0.3, 0.31, 0.9]])
    labels = model._gating_labels(probs, [dict(img_label=[1, 1, 1, 1])])
    assert labels['predicted'].tolist() == [[0.0, 0.0, 1.0, 1.0]]


# ------------------------------------------------------------ 4. smaller protocol details

def test_intensity_tta_scales_the_normalised_tensor():
    x = torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1).expand(1, 3, 1, 2).clone()
    x[..., 1] = 3.0  # right column differs, to see the flip
    mean, std = torch.full((3, 1, 1), 100.0), torch.full((3, 1, 1), 50.0)
    views, flipped = tta_views(x, True, (0.9, 1.0, 1.1), mean, std)  # mean/std unused
    assert flipped == [False, False, False, True, True, True]
    torch.testing.assert_close(views[0, :, 0, 0], torch.tensor([0.9, -1.8, 0.45]))
    torch.testing.assert_close(views[2, :, 0, 1], torch.tensor([3.3, 3.3, 3.3]))
    torch.testing.assert_close(views[3, :, 0, 0], torch.tensor([2.7, 2.7, 2.7]))  # flipped
    # old option: s scales raw pixels: (s*raw - mean)/std = s*x + (s - 1)*mean/std
    raw, _ = tta_views(x, False, (0.9, ), mean, std, space='raw')
    torch.testing.assert_close(raw[0, :, 0, 0], torch.tensor([0.9 - 0.2, -1.8 - 0.2, 0.45 - 0.2]))
    with pytest.raises(ValueError, match='intensity space'):
        tta_views(x, False, (1.0, ), space='pixels')


def test_maps_are_upsampled_with_align_corners_true():
    m = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    # align_corners=True, 2 -> 4: sample points 0, 1/3, 2/3, 1 of the input grid per axis
    steps = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0])
    expected = 2 * steps[:, None] + steps[None, :]
    torch.testing.assert_close(upsample_maps(m, (4, 4))[0, 0], expected)
    fused = fuse_stage_maps([m], (1.0, ), (4, 4))  # min-max first: / (3 + 1e-6)
    torch.testing.assert_close(fused[0, 0], expected / (3 + 1e-6))
    # the old option (align_corners=False): sample points -1/4 (clamped), 1/4, 3/4, 5/4 (clamped)
    old_steps = torch.tensor([0.0, 0.25, 0.75, 1.0])
    old = fuse_stage_maps([m], (1.0, ), (4, 4), align_corners=False)[0, 0]
    torch.testing.assert_close(old, (2 * old_steps[:, None] + old_steps[None, :]) / (3 + 1e-6))


def test_segmentor_resizes_maps_to_ori_shape_with_align_corners_true():
    model = build_segmentor()
    maps = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    out = model._to_original_size(maps, dict(ori_shape=(4, 4)), model.protocol.align_corners)
    torch.testing.assert_close(out[0, 0, 1], torch.tensor([2 / 3, 1.0, 4 / 3, 5 / 3]))


def test_min_max_normalisation_uses_eps_1e6():
    out = normalize_class_maps(torch.tensor([[[[0.0, 1e-6], [0.0, 0.0]]]]))
    torch.testing.assert_close(out[0, 0, 0, 1], torch.tensor(0.5))  # 1e-6 / (1e-6 + 1e-6)
    out = normalize_class_maps(torch.tensor([[[[0.0, 2.0]]]]))
    torch.testing.assert_close(out[0, 0, 0, 1], torch.tensor(2.0 / (2.0 + 1e-6)))


# -------------------------------------------------------------------------------------- 3. CRF

class FakeDenseCRF2D:
    """Records the calls a DenseCRF2D gets; inference returns the softmax of -unary."""

    calls = []

    def __init__(self, width, height, labels):
        self.calls.append(('DenseCRF2D', width, height, labels))

    def setUnaryEnergy(self, unary):  # noqa: N802 (pydensecrf's name)
        self.unary = unary.copy()
        self.calls.append(('setUnaryEnergy', unary.copy()))

    def addPairwiseGaussian(self, **kw):  # noqa: N802
        self.calls.append(('addPairwiseGaussian', kw))

    def addPairwiseBilateral(self, **kw):  # noqa: N802
        self.calls.append(('addPairwiseBilateral', kw))

    def inference(self, iterations):
        self.calls.append(('inference', iterations))
        q = np.exp(-self.unary)
        return q / q.sum(axis=0, keepdims=True)


@pytest.fixture
def fake_densecrf(monkeypatch):
    FakeDenseCRF2D.calls = []
    module = types.ModuleType('pydensecrf.densecrf')
    module.DenseCRF2D = FakeDenseCRF2D
    package = types.ModuleType('pydensecrf')
    package.densecrf = module
    monkeypatch.setitem(sys.modules, 'pydensecrf', package)
    monkeypatch.setitem(sys.modules, 'pydensecrf.densecrf', module)
    return FakeDenseCRF2D.calls


def test_public_crf_parameters_and_softmax_unary_reach_pydensecrf(fake_densecrf):
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    scores = np.zeros((5, 2, 3), np.float32)
    scores[4] = math.log(4.0)  # softmax at every pixel: (1/8, 1/8, 1/8, 1/8, 1/2)
    dense_crf(image, scores)
    names = [call[0] for call in fake_densecrf]
    assert names == ['DenseCRF2D', 'setUnaryEnergy', 'addPairwiseGaussian',
                     'addPairwiseBilateral', 'inference']
    assert fake_densecrf[0][1:] == (3, 2, 5)  # width, height, labels
    unary = fake_densecrf[1][1]
    assert unary.shape == (5, 6) and unary.dtype == np.float32
    np.testing.assert_allclose(unary[:, 0], [math.log(8)] * 4 + [math.log(2)], rtol=1e-6)
    assert fake_densecrf[2][1] == dict(sxy=15, compat=30)
    bilateral = dict(fake_densecrf[3][1])
    np.testing.assert_array_equal(bilateral.pop('rgbim'), image)  # the image as given (BGR)
    assert bilateral == dict(sxy=10, srgb=20, compat=50)
    assert fake_densecrf[4][1] == 5


def test_affinitynet_crf_option_keeps_the_old_kernels_and_sum_normalised_unary(fake_densecrf):
    scores = np.zeros((2, 1, 1), np.float32)
    scores[:, 0, 0] = (1.0, 3.0)
    dense_crf(np.zeros((1, 1, 3), np.uint8), scores, 'affinitynet')
    np.testing.assert_allclose(fake_densecrf[1][1][:, 0], [math.log(4), math.log(4 / 3)],
                               rtol=1e-6)
    assert fake_densecrf[2][1] == dict(sxy=3, compat=3)
    assert {k: v for k, v in fake_densecrf[3][1].items() if k != 'rgbim'} == dict(
        sxy=80, srgb=13, compat=10)
    assert fake_densecrf[4][1] == 10
    assert CRF_PRESETS['public'].iterations == 5


def test_softmax_unary_is_clipped_like_unary_from_softmax():
    scores = np.zeros((2, 1, 1), np.float32)
    scores[0] = 100.0  # softmax (1, e^-100): the second is clipped to 1e-5
    np.testing.assert_allclose(crf_unary(scores, 'softmax')[:, 0], [0.0, -math.log(1e-5)],
                               rtol=1e-5, atol=1e-6)


def test_segmentor_crf_variants_and_the_image_it_gets(fake_densecrf):
    model = build_segmentor(crf=True, crf_workers=0)
    labels = [[1, 0, 1, 0], [0, 1, 0, 0]]
    uint8 = [torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8) for _ in labels]
    samples = labelled_samples(labels, (32, 32))
    data = model.data_preprocessor(dict(inputs=uint8, data_samples=samples), training=False)
    with torch.no_grad():
        results = model.predict(data['inputs'], data['data_samples'])
    # one CRF per image and gating: 2 images x (oracle, predicted)
    images = [call[1]['rgbim'] for call in fake_densecrf if call[0] == 'addPairwiseBilateral']
    assert len(images) == 4
    for k, image in enumerate(images):  # the de-normalised input, as loaded (channel order kept)
        np.testing.assert_array_equal(image, uint8[k // 2].permute(1, 2, 0).numpy())
    for result in results:
        for variant in ('oracle', 'predicted', 'oracle_crf', 'predicted_crf'):
            assert f'pred_sem_seg_{variant}' in result
        assert torch.equal(result.pred_sem_seg.data, result.pred_sem_seg_oracle_crf.data)
        # fake CRF = softmax of -unary = softmax of the scores: argmax unchanged
        assert torch.equal(result.pred_sem_seg_oracle.data, result.pred_sem_seg_oracle_crf.data)
        torch.testing.assert_close(result.seg_logits.data.sum(0),
                                   torch.ones(32, 32), rtol=0, atol=1e-5)
        assert result.metainfo['protocol']['crf'] is True


def noisy_two_region_case():
    """A 32 x 32 BGR image, left half dark, right half light; scores favour label 0 on the left
    and label 4 (BG) on the right by 0.6, with 40 pixels flipped by 0.3 the other way."""
    rng = np.random.default_rng(0)
    image = np.full((32, 32, 3), 40, np.uint8)
    image[:, 16:] = 220
    truth = np.zeros((32, 32), int)
    truth[:, 16:] = 4
    scores = np.zeros((5, 32, 32), np.float32)
    scores[0, :, :16] = 0.6
    scores[4, :, 16:] = 0.6
    noisy = rng.choice(32 * 32, 40, replace=False)
    for y, x in zip(*np.unravel_index(noisy, (32, 32))):
        wrong = 4 if truth[y, x] == 0 else 0
        scores[:, y, x] = 0
        scores[wrong, y, x] = 0.3
    return image, scores, truth


def test_real_public_crf_smooths_a_noisy_label_map():
    pytest.importorskip('pydensecrf.densecrf')
    image, scores, truth = noisy_two_region_case()
    assert (scores.argmax(0) != truth).sum() == 40
    refined = dense_crf(image, scores)
    np.testing.assert_allclose(refined.sum(0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(refined.argmax(0), truth)


def test_crf_pool_gives_the_in_process_results():
    pytest.importorskip('pydensecrf.densecrf')
    image, scores, _ = noisy_two_region_case()
    tasks = [(image, scores), (image[:, ::-1].copy(), scores[:, :, ::-1].copy()), (image, scores)]
    in_process = run_dense_crf(tasks, 'public', workers=0)
    pooled = run_dense_crf(tasks, 'public', workers=2)
    for a, b in zip(in_process, pooled):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(in_process[0], dense_crf(image, scores))


# ---------------------------------------------------------------------------- 5. protocol record

def test_protocol_record_holds_every_result_switch_and_no_speed_switch():
    record = InferenceProtocol.from_cfg(dict(crf_workers=3, max_views_per_forward=4)).record()
    assert record == dict(
        tta=dict(flip=True, intensities=[0.9, 1.0, 1.1]), intensity_space='normalized',
        fusion_weights=[0.0, 0.3, 0.3, 0.4], map_merge='per_pixel', align_corners=True,
        bg_alpha=10.0, gating='oracle', gating_score='mean', gating_threshold=0.5, crf=False,
        crf_params='public')
    custom = InferenceProtocol.from_cfg(dict(crf_params=dict(iterations=3))).record()
    assert custom['crf_params'] == dict(iterations=3)
    for key, bad in (('map_merge', 'max'), ('gating_score', 'max'), ('intensity_space', 'rgb')):
        with pytest.raises(ValueError, match=f'test_cfg.{key} must be one of'):
            InferenceProtocol.from_cfg({key: bad})
    with pytest.raises(ValueError, match='not a preset name'):
        InferenceProtocol.from_cfg(dict(crf_params='densecrf'))
    with pytest.raises(ValueError, match=r"unknown keys \['sigma'\]"):
        InferenceProtocol.from_cfg(dict(crf_params=dict(sigma=3)))


def test_paper_and_cpu_configs_default_to_the_public_inference():
    from mmengine.config import Config
    for name in ('lpd_bcss', 'lpd_synth_cpu', 'cam_bcss', 'cam_synth_cpu', 'pbip_bcss',
                 'pbip_synth_cpu'):
        path = osp.join(REPO, 'configs', f'{name}.py')
        test_cfg = Config.fromfile(path).model.test_cfg
        protocol = InferenceProtocol.from_cfg(test_cfg)
        # The CPU preset drops the CRF (its cost; configs/_base_/models/lpd_mit_tiny_cpu.py).
        assert (protocol.map_merge, protocol.gating_score, protocol.intensity_space,
                protocol.align_corners, protocol.crf, protocol.crf_params) == (
                    'per_pixel', 'mean', 'normalized', True, 'cpu' not in name, 'public'), path
    config = osp.join(REPO, 'configs', 'lpd_synth_cpu.py')
    hooks = [h['type'] for h in Config.fromfile(config).custom_hooks]
    assert hooks == ['CostRecorderHook', 'NoCRFInValidationHook']


# ------------------------------------------------- 2. the gating threshold, chosen on val only

def test_threshold_choice_maximises_mean_per_class_f1_on_hand_example():
    probs = np.array([[0.9, 0.7], [0.6, 0.3], [0.4, 0.2], [0.2, 0.1]])
    labels = np.array([[1, 1], [1, 1], [0, 0], [0, 0]])
    # t = 0.25: class 0 predicts images 0-2 (TP 2, FP 1): F1 0.8; class 1 images 0-1: F1 1
    np.testing.assert_allclose(per_class_f1(probs, labels, 0.25), [0.8, 1.0])
    # t = 0.5: class 0 F1 1; class 1 only image 0 (TP 1, FN 1): 2/3
    np.testing.assert_allclose(per_class_f1(probs, labels, 0.5), [1.0, 2 / 3])
    choice = choose_gating_threshold(probs, labels, grid=(0.25, 0.5, 0.65))
    assert choice['threshold'] == 0.25 and choice['mean_f1'] == pytest.approx(0.9)
    assert choice['per_class_f1'] == pytest.approx([0.8, 1.0])
    assert [row['mean_f1'] for row in choice['grid']] == pytest.approx([0.9, 5 / 6, 2 / 3])
    # ties go to the threshold closest to 0.5; a class never present nor predicted is left out
    tie = choose_gating_threshold(np.array([[0.9, 0.0], [0.1, 0.0]]), np.array([[1, 0], [0, 0]]),
                                  grid=(0.2, 0.45, 0.8))
    assert tie['threshold'] == 0.45 and tie['per_class_f1'] == [1.0, None]
    assert len(DEFAULT_GRID) == 19 and DEFAULT_GRID[0] == 0.05 and DEFAULT_GRID[-1] == 0.95


@pytest.fixture(scope='module')
def tiny_val_setup(tmp_path_factory):
    """A tiny synthetic set and a randomly initialised CPU-preset checkpoint."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from lpd_bench.data.synthetic import write_synthetic_dataset
    root = str(write_synthetic_dataset(tmp_path_factory.mktemp('data') / 'BCSS-WSSS', seed=3,
                                       n_train=4, n_val=4, n_test=2, patch_size=64))
    config = osp.join(REPO, 'configs', 'lpd_synth_cpu.py')
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    checkpoint = str(tmp_path_factory.mktemp('ckpt') / 'random.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    return config, checkpoint, root


def test_choose_gating_threshold_tool_runs_on_val(tiny_val_setup, tmp_path, capsys):
    import json
    from helpers import load_tool
    config, checkpoint, root = tiny_val_setup
    out = tmp_path / 'gating.json'
    tool = load_tool('choose_gating_threshold')
    result = tool.main([config, checkpoint, '--out', str(out), '--work-dir', str(tmp_path),
                        '--grid', '0.3', '0.5', '0.7', '--cfg-options', f'data_root={root}',
                        'cpu_encoder=random'])
    assert json.loads(out.read_text()) == result
    assert result['split'] == 'val' and result['num_images'] == 4
    assert result['gating_score'] == 'mean' and result['threshold'] in (0.3, 0.5, 0.7)
    assert f"gating_threshold={result['threshold']}" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="chosen on 'val' only"):
        tool.main([config, checkpoint, '--out', str(out), '--cfg-options', f'data_root={root}',
                   'cpu_encoder=random',
                   'val_dataloader.dataset.split=test'])

"""Issue 10, training side: LPD's losses, augmentation and init as the public code computes them.

Each test pins one item to a small case computed by hand from the formulas of docs/methods.md (LPD):
the refiner's cut-outs (raw map, align_corners=True, hard mask ``>=`` 0.5 x the max of the
UPSAMPLED maps), its prototype selection (strict ``>``, nothing at k = 1), the one resize shared
by the refiner and PBIP's bank, the diversity loss inputs (raw vs projected prototypes) and the
public variant's pixel selection and division by B, the rotation probability, the projection
MLPs' init.
"""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS, TRANSFORMS

import lpd_bench.models  # noqa: F401  (registers the modules)
from baselines.pbip import prototype_bank
from lpd_bench.data.transforms import TRAIN_AUGMENTATION, RandomRotate90
from lpd_bench.models import encoder_resize
from lpd_bench.models.losses.diversity import PrototypeDiversityLoss
from lpd_bench.models.losses.mask_refiner import MaskRefinerLoss, select_prototypes
from lpd_bench.models.prototype_head import init_projections

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODEL_CONFIGS = osp.join(REPO, 'configs', '_base_', 'models')
C = 4


@MODELS.register_module(name='MeanColourEncoderForTests', force=True)
class MeanColourEncoderForTests(nn.Module):
    """(N, 3, H, W) -> (N, 3): the mean colour, enough to run the refiner end to end."""

    def forward(self, x):
        return x.mean((2, 3))


def refiner(**kwargs):
    return MaskRefinerLoss(C, encoder=dict(type='MeanColourEncoderForTests'), **kwargs)


# ---------------------------------------------------------------- mask refiner: public cut-outs
def hand_case():
    """One image, k = 2 (8 prototypes). Prototype 0's 2x2 stage-4 map [[0, 3], [3, 6]] upsampled
    with align_corners=True to 4x4 is exactly up[i, j] = i + j (3x + 3y on the unit square);
    prototype 1's map is the constant 8: the image max of the upsampled maps is 8, the threshold
    0.5 * 8 = 4. The image x[ch, i, j] = ch + 1."""
    sim_maps = torch.zeros(1, 2 * C, 2, 2)
    sim_maps[0, 0] = torch.tensor([[0., 3.], [3., 6.]])
    sim_maps[0, 1] = 8.0
    images = torch.arange(1., 4.)[None, :, None, None].expand(1, 3, 4, 4).clone()
    return images, sim_maps


def test_public_cutouts_raw_upsampled_map_and_ge_half_max_on_a_hand_case():
    images, sim_maps = hand_case()
    up = torch.tensor([[i + j for j in range(4)] for i in range(4)], dtype=torch.float)
    mask = (up >= 4).float()  # 6 pixels; '>' would give 3 (i + j = 4 sits on the threshold)
    assert mask.sum() == 6 and (up > 4).sum() == 3
    ref = refiner()
    assert ref.cutout_form == 'public' and ref.selection == 'public'  # the defaults
    _, weights, hard = ref.soft_hard_masks(images, sim_maps, torch.tensor([0]), torch.tensor([0]))
    torch.testing.assert_close(weights[0, 0], up)  # the RAW map: no ReLU, no division by max
    assert torch.equal(hard[0, 0], mask)
    fg, bg, covered = ref.cutouts(images, sim_maps, torch.tensor([0]), torch.tensor([0]))
    for ch in range(3):
        x = ch + 1.0
        torch.testing.assert_close(fg[0, ch], up * x * mask)
        torch.testing.assert_close(bg[0, ch], (1 - up) * x * (1 - mask))
    assert fg[0, 0, 3, 3] == 6.0 and fg[0, 2, 2, 2] == 12.0  # 6 * 1 and 4 * 3: not in [0, 1]
    assert bg[0, 0, 0, 3] == -2.0  # (1 - 3) * 1: the raw map can push the background negative
    assert covered.item() == 6 / 16


def test_hard_mask_max_is_over_the_upsampled_maps_not_the_stage4_grid():
    """A 3x3 map with 9 at the centre: upsampled to 4x4 with align_corners=True the centre is
    never sampled and the max is 9 * (2/3)^2 = 4, so the threshold is 2 (not 4.5)."""
    sim_maps = torch.zeros(1, C, 3, 3)  # k = 1
    sim_maps[0, 0, 1, 1] = 9.0
    images = torch.ones(1, 3, 4, 4)
    _, weights, hard = refiner().soft_hard_masks(images, sim_maps, torch.tensor([0]),
                                                 torch.tensor([0]))
    centre = torch.zeros(4, 4)
    centre[1:3, 1:3] = 1
    torch.testing.assert_close(weights[0, 0], 4.0 * centre)
    assert torch.equal(hard[0, 0], centre)  # 4 >= 0.5 * 4; with the grid max 4.5 nothing passes
    # the earlier form: threshold on the stage-4 max (9), '>' and align_corners=False
    _, _, old_hard = refiner(cutout_form='soft_normalized').soft_hard_masks(
        images, sim_maps, torch.tensor([0]), torch.tensor([0]))
    assert old_hard.sum() == 0


def test_public_cutouts_at_a_reduced_cutout_size():
    """CPU-preset style: cut-outs at cutout_size (4 px here, 16 in the preset) from an 8 px input:
    the maps are upsampled to 4 px (the same hand values), the image shrunk by the shared resize,
    and the max is taken over the 4 px maps."""
    images8 = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    _, sim_maps = hand_case()
    ref = refiner(cutout_size=4)
    fg, bg, _ = ref.cutouts(images8, sim_maps, torch.tensor([0]), torch.tensor([0]))
    x = F.interpolate(images8, size=(4, 4), mode='bilinear', align_corners=False, antialias=True)
    up = torch.tensor([[i + j for j in range(4)] for i in range(4)], dtype=torch.float)
    mask = (up >= 4).float()
    torch.testing.assert_close(fg[0], up * x[0] * mask)
    torch.testing.assert_close(bg[0], (1 - up) * x[0] * (1 - mask))


def test_cpu_preset_refiner_uses_the_public_form_at_16_px():
    cfg = Config.fromfile(osp.join(MODEL_CONFIGS, 'lpd_mit_tiny_cpu.py'))
    refiner_cfg = cfg.model.decode_head.refiner_loss
    assert refiner_cfg.cutout_size == 16
    assert refiner_cfg.cutout_form == 'public' and refiner_cfg.selection == 'public'
    ref = refiner(cutout_size=refiner_cfg.cutout_size)
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 112, 112, generator=gen)
    sim_maps = torch.randn(2, 3 * C, 7, 7, generator=gen) * 5
    b_idx, p_idx = torch.tensor([0, 1, 1]), torch.tensor([2, 0, 11])
    resized, weights, hard = ref.soft_hard_masks(images, sim_maps, b_idx, p_idx)
    assert resized.shape[-2:] == weights.shape[-2:] == hard.shape[-2:] == (16, 16)
    up = F.interpolate(sim_maps, size=(16, 16), mode='bilinear', align_corners=True)
    image_max = up.flatten(1).amax(1)
    for i, (b, p) in enumerate(zip(b_idx.tolist(), p_idx.tolist())):
        assert torch.equal(hard[i, 0], (up[b, p] >= 0.5 * image_max[b]).float())
        torch.testing.assert_close(weights[i, 0], up[b, p])


def test_refiner_gradient_flows_through_the_raw_map_only():
    images, sim_maps = hand_case()
    sim_maps.requires_grad_(True)
    fg, bg, _ = refiner().cutouts(images, sim_maps, torch.tensor([0]), torch.tensor([0]))
    (fg.sum() + bg.sum()).backward()
    # d/dm of m x M + (1 - m) x (1 - M) is x (2M - 1): non-zero for the own map, none for the
    # map that only set the max (the threshold carries no gradient)
    assert sim_maps.grad[0, 0].abs().sum() > 0 and sim_maps.grad[0, 1:].abs().sum() == 0


# ---------------------------------------------------------------- mask refiner: selection
def test_selection_is_strict_and_k1_selects_nothing():
    labels = torch.tensor([[1., 1., 1., 0.]])
    # k = 3 rows: TUM (1, 1, 1) ties its mean: none; STR (2, 1, 0): mean 1 -> only 2;
    # LYM (3, 3, 0): mean 2 -> both 3s; NEC absent.
    scores = torch.tensor([[1., 1., 1., 2., 1., 0., 3., 3., 0., 9., 9., 0.]])
    assert select_prototypes(scores, labels, C).int().tolist() == [
        [0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0]]
    k1 = torch.tensor([[5., -1., 2., 0.]])
    assert not select_prototypes(k1, labels, C).any()
    assert select_prototypes(k1, labels, C, 'all_if_single').int().tolist() == [[1, 1, 1, 0]]
    with pytest.raises(ValueError, match="selection must be one of .* got 'max'"):
        select_prototypes(k1, labels, C, 'max')


def test_k1_model_has_no_refiner_contrast_only_the_activation_term():
    ref = refiner()
    calls = []
    ref.encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    images, sim_maps = torch.randn(2, 3, 4, 4), torch.randn(2, C, 2, 2).requires_grad_(True)
    protos = torch.randn(C, 3)
    losses = ref(images, sim_maps, protos, torch.ones(2, C), torch.randn(2, C))
    assert calls == [] and losses['loss_fg'] == 0 and losses['loss_bg'] == 0
    assert losses['loss_act'].item() == pytest.approx(0.1 * 0.0005 * sim_maps.mean().item())
    old = refiner(selection='all_if_single')(images, sim_maps, protos, torch.ones(2, C),
                                              torch.randn(2, C))
    assert old['loss_fg'] != 0


def test_paper_config_records_the_refiner_switches():
    head = Config.fromfile(osp.join(MODEL_CONFIGS, 'lpd_mit_b1.py')).model.decode_head
    assert head.refiner_loss.cutout_form == 'public'
    assert head.refiner_loss.selection == 'public'
    assert head.refiner_loss.blank_cutouts == 'embed'


# ---------------------------------------------------------------- one shared resize
def test_refiner_and_prototype_bank_share_one_resize(monkeypatch):
    calls = []
    original = encoder_resize.resize_for_encoder

    def recording(images, size):
        calls.append((tuple(images.shape), size))
        return original(images, size)

    monkeypatch.setattr(encoder_resize, 'resize_for_encoder', recording)
    ref = refiner(cutout_size=4)
    images, sim_maps = torch.randn(1, 3, 8, 8), hand_case()[1]
    ref.cutouts(images, sim_maps, torch.tensor([0]), torch.tensor([0]))
    assert calls == [((1, 3, 8, 8), (4, 4))]

    class Preprocessor:
        def __call__(self, batch, training):
            return dict(inputs=torch.stack(batch))

    dataset = [torch.randn(3, 8, 8) for _ in range(3)]
    embedded = prototype_bank.embed_dataset(ref.encoder, Preprocessor(), dataset, [2, 0], 2,
                                            'cpu', size=4)
    assert calls[1:] == [((2, 3, 8, 8), 4)]
    expected = F.normalize(original(torch.stack([dataset[2], dataset[0]]), 4).mean((2, 3)), dim=1)
    torch.testing.assert_close(embedded, expected)


def test_shared_resize_is_bilinear_antialiased_when_shrinking():
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    assert encoder_resize.resize_for_encoder(x, None) is x
    assert encoder_resize.resize_for_encoder(x, 16) is x
    down = encoder_resize.resize_for_encoder(x, 4)
    torch.testing.assert_close(down, F.interpolate(x, size=(4, 4), mode='bilinear',
                                                   align_corners=False, antialias=True))
    aliased = F.interpolate(x, size=(4, 4), mode='bilinear', align_corners=False)
    assert (down - aliased).abs().max() > 0.1
    # a constant image stays constant, and a 4-px checkerboard averages out when shrunk 4x
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2
    flat = encoder_resize.resize_for_encoder(checker[None, None].float().expand(1, 3, 16, 16), 4)
    assert flat.std() < 0.05 and flat.mean().item() == pytest.approx(0.5, abs=0.05)
    up = encoder_resize.resize_for_encoder(x, (32, 24))
    torch.testing.assert_close(up, F.interpolate(x, size=(32, 24), mode='bilinear',
                                                 align_corners=False))
    with pytest.raises(ValueError, match='int or'):
        encoder_resize.resize_for_encoder(x, (4, 4, 4))


# ---------------------------------------------------------------- diversity loss inputs
def head_cfg(stage4, dim, diversity_prototypes, **kwargs):
    return dict(type='PrototypeHead', in_channels=[8, 16, 16, stage4], num_classes=C,
                prototypes=dict(type='LearnablePrototypes', num_per_class=2, dim=dim),
                proj_hidden=8, loss_warmup_iters=0, diversity_prototypes=diversity_prototypes,
                diversity_loss=dict(type='PrototypeDiversityLoss', loss_weight=1.0), **kwargs)


def diversity_protos_seen(head):
    """The prototypes the head passes to its diversity loss for a random batch."""
    from mmseg.structures import SegDataSample
    seen = []
    head.diversity_loss.register_forward_hook(lambda m, i, o: seen.append(i[1]))
    gen = torch.Generator().manual_seed(3)
    feats = [torch.randn(2, d, s, s, generator=gen)
             for d, s in zip(head.in_channels, (8, 4, 2, 2))]
    samples = [SegDataSample(metainfo=dict(img_label=[1, 0, 1, 0])) for _ in range(2)]
    head.loss(feats, samples, torch.randn(2, 3, 32, 32))
    return seen[0]


def test_diversity_uses_raw_prototypes_when_the_widths_match():
    head = MODELS.build(head_cfg(12, 12, 'raw'))
    protos = diversity_protos_seen(head)
    assert torch.equal(protos, head.prototypes())  # the raw P rows, not W_4(P)
    out = head([torch.randn(1, d, 2, 2) for d in head.in_channels], stages=[3])
    assert not torch.allclose(protos, out.stage_prototypes[3])


def test_diversity_uses_projected_prototypes_when_configured():
    head = MODELS.build(head_cfg(16, 12, 'projected'))
    protos = diversity_protos_seen(head)
    torch.testing.assert_close(protos, head.projections[3](head.prototypes()))


def test_raw_diversity_prototypes_with_other_widths_is_an_error():
    with pytest.raises(ValueError, match=r"diversity_prototypes='raw'.*dim=12.*"
                                         r"in_channels\[-1\]=16.*widths differ"):
        MODELS.build(head_cfg(16, 12, 'raw'))
    with pytest.raises(ValueError, match="diversity_prototypes must be one of .* 'both'"):
        MODELS.build(head_cfg(12, 12, 'both'))
    with pytest.raises(ValueError, match='unprojected source'):
        MODELS.build(dict(head_cfg(12, 12, 'raw'), prototypes=dict(type='StageClassVectors')))
    # without a diversity loss the key is not used, so nothing to check
    MODELS.build(dict(head_cfg(16, 12, 'raw'), diversity_loss=None))


def test_configs_record_which_prototypes_the_diversity_loss_uses():
    paper = Config.fromfile(osp.join(MODEL_CONFIGS, 'lpd_mit_b1.py')).model.decode_head
    cpu = Config.fromfile(osp.join(MODEL_CONFIGS, 'lpd_mit_tiny_cpu.py')).model.decode_head
    assert paper.diversity_prototypes == 'raw'
    assert paper.prototypes.dim == paper.in_channels[-1] == 512
    assert cpu.diversity_prototypes == 'projected'
    assert cpu.prototypes.dim == 512 and cpu.in_channels[-1] == 128
    assert paper.diversity_loss.temperature == 0.1  # ours (the public code has none)
    init_default_scope('mmseg')
    head = dict(paper.to_dict(), refiner_loss=None)  # the paper head builds with 'raw'
    MODELS.build(head)


def test_public_diversity_variant_pixel_selection_and_division_by_batch_size():
    """Three images of 1 x 3 pixels, k = 2 with identical prototypes in each class, so every
    contributing (image, class) pair has penalty exp(-0) = 1. Pseudo-labels in the public map
    (0 = background, c + 1 = tissue c):

    - image 0: [bg, TUM, TUM] = values [0, 1, 1]: class 0 reads value 0 (one pixel: enough),
      class 1 reads value 1 (two pixels); labelled LYM only (the label is not read): 2 pairs;
    - image 1: all background = [0, 0, 0]: class 0: 1 pair; no label at all;
    - image 2: all NEC = [4, 4, 4]: value 4 is read by no class: 0 pairs; labelled TUM.

    Public loss = (2 + 1 + 0) / B = 1. Divided by the contributing images it would be 1.5; the
    corrected form gives 0 (no labelled class owns a pixel: LYM in image 0, TUM in image 2)."""
    k = 2
    sim_maps = torch.full((3, C * k, 1, 3), -1.0)
    sim_maps[0, 0:2, 0, 1:] = 1.0  # TUM wins pixels 1, 2 of image 0; pixel 0 is background
    sim_maps[2, 6:8] = 1.0  # NEC everywhere in image 2
    labels = torch.tensor([[0., 0., 1., 0.], [0., 0., 0., 0.], [1., 0., 0., 0.]])
    gen = torch.Generator().manual_seed(4)
    feats = torch.randn(3, 5, 1, 3, generator=gen)
    protos = torch.randn(C, 5, generator=gen).repeat_interleave(k, dim=0)  # u == w per class
    public = PrototypeDiversityLoss(C, variant='public', loss_weight=1.0)
    assert public(feats, protos, sim_maps, labels).item() == pytest.approx(1.0, abs=1e-5)
    assert PrototypeDiversityLoss(C, variant='public', loss_weight=0.5)(
        feats, protos, sim_maps, labels).item() == pytest.approx(0.5, abs=1e-5)
    corrected = PrototypeDiversityLoss(C, variant='corrected', loss_weight=1.0)
    assert corrected(feats, protos, sim_maps, labels).item() == 0.0
    # drop image 2: (2 + 1) / 2
    assert public(feats[:2], protos, sim_maps[:2], labels[:2]).item() == pytest.approx(1.5,
                                                                                       abs=1e-5)


# ---------------------------------------------------------------- augmentation
def test_random_rotate90_is_applied_with_probability_half():
    rotate = [t for t in TRAIN_AUGMENTATION if t['type'] == 'RandomRotate90']
    assert rotate == [dict(type='RandomRotate90', prob=0.5)]
    assert RandomRotate90().prob == 0.5  # albumentations' default, the public code's setting
    data = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets', 'bcss_wsss.py'))
    steps = [t for t in data.train_pipeline
             if t['type'] not in ('LoadImageFromFile', 'PackWSSSInputs')]
    assert steps == list(TRAIN_AUGMENTATION)
    np.random.seed(0)
    transform = TRANSFORMS.build(rotate[0])
    img = np.zeros((2, 2, 3), np.uint8)
    ks = np.array([transform(dict(img=img, img_shape=(2, 2)))['rotate90_k']
                   for _ in range(8000)])
    # applied with p = 0.5, then k uniform in 0..3: P(k=0) = 0.5 + 0.5/4, P(k=j) = 1/8 otherwise
    freq = np.bincount(ks, minlength=4) / len(ks)
    np.testing.assert_allclose(freq, [0.625, 0.125, 0.125, 0.125], atol=0.02)


# ---------------------------------------------------------------- projection init
def test_projection_mlps_truncated_normal_std_002_zero_bias():
    torch.manual_seed(0)
    head = MODELS.build(dict(type='PrototypeHead', in_channels=[64, 128, 320, 512],
                             num_classes=C, prototypes=dict(type='LearnablePrototypes',
                                                            num_per_class=10, dim=512)))
    linears = [m for m in head.projections.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 8
    weights = torch.cat([m.weight.flatten() for m in linears])
    # PyTorch's default would be uniform with std 1/sqrt(3 fan_in): 0.0255 (fan_in 512), 0.036
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    assert weights.mean().abs().item() < 1e-3 and weights.abs().max().item() < 2.0
    for m in linears:
        assert m.weight.std().item() == pytest.approx(0.02, rel=0.1)
        assert torch.count_nonzero(m.bias) == 0
    # normal, not uniform: about 4.6% of the values beyond 2 std (a uniform of that std has none
    # beyond 1.73 std)
    assert (weights.abs() > 0.04).float().mean().item() == pytest.approx(0.0455, abs=0.005)


def test_projection_init_survives_init_weights_and_yields_to_checkpoints(tmp_path):
    from mmengine.runner import load_checkpoint
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'lpd_synth_cpu.py'))
    cfg.model.backbone.init_cfg = None  # backbone_init=scratch: no pretraining on the default set
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    before = {k: v.clone() for k, v in model.decode_head.projections.state_dict().items()}
    assert all(torch.count_nonzero(v) == 0 for k, v in before.items() if k.endswith('bias'))
    model.init_weights()  # what MMEngine's runner does after building the model
    after = model.decode_head.projections.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # a checkpoint loaded afterwards (load_from / resume) replaces them
    other = MODELS.build(dict(cfg.model.decode_head, refiner_loss=None))
    with torch.no_grad():
        for p in other.projections.parameters():
            p.add_(1.0)
    path = str(tmp_path / 'head.pth')
    torch.save({'state_dict': {f'decode_head.{k}': v for k, v in other.state_dict().items()}},
               path)
    load_checkpoint(model, path, map_location='cpu', strict=False)
    for k, v in other.projections.state_dict().items():
        assert torch.equal(model.decode_head.projections.state_dict()[k], v)


def test_init_projections_helper():
    mlp = nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 100))
    init_projections(mlp)
    assert mlp[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert mlp[0].bias.abs().sum() == 0 and mlp[2].bias.abs().sum() == 0

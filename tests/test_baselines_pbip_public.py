"""pbip_public: the public PBIP code's batch InfoNCE, min-max cut-outs, unnormalised similarity,
argmax over the tissue maps, and one training step + one prediction from its configs."""
import math

import pytest
import helpers  # noqa: F401  (registers ConvEncoderForTests)
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from baselines.pbip.spec import BANK_STAGE
from baselines.pbip_public import (PBIPPublicHead, PBIPPublicRefinerLoss, PBIPPublicSegmentor,
                                   batch_info_nce_background, batch_info_nce_foreground,
                                   minmax_per_image_channel)
from lpd_bench.bench.cases import random_batch
from lpd_bench.evaluation.wsss_metric import WSSSMetric
from lpd_bench.methods import get_method
from lpd_bench.models.losses.mask_refiner import MaskRefinerLoss

C = 4
CONFIGS = ('configs/pbip_public_synth_cpu.py', 'configs/pbip_public_bcss.py')


def refiner(**kwargs) -> PBIPPublicRefinerLoss:
    return MODELS.build(dict(type='PBIPPublicRefinerLoss', num_classes=C,
                             encoder=dict(type='ConvEncoderForTests'), **kwargs))


def design_fg(emb, protos, own, t):
    """L_fg of docs/methods.md (pbip_public), term by term with exp and sums."""
    e = F.normalize(emb, dim=1)
    num = den = 0.0
    for n in range(e.shape[0]):
        a = torch.exp(e[n] @ protos[own[n]] / t)
        b = sum(torch.exp(e[n] @ protos[l] / t) for l in range(protos.shape[0]) if l != own[n])
        num, den = num + a, den + a + b
    return -torch.log(num / den)


def design_bg(emb, protos, own, t):
    """L_bg of docs/methods.md (pbip_public), term by term with exp and sums."""
    g = F.normalize(emb, dim=1)
    num = den = 0.0
    for n in range(g.shape[0]):
        others = [torch.exp(g[n] @ protos[l] / t) for l in range(protos.shape[0]) if l != own[n]]
        c = sum(others) / len(others)
        d = torch.exp(g[n] @ protos[own[n]] / t)
        num, den = num + c, den + c + d
    return -torch.log(num / den)


def test_batch_info_nce_on_a_hand_made_example():
    # row 0: own 0, e^{ln 2} = 2, others e^0 = 1, 1; row 1: own 1, e^{ln 3} = 3, others 1, 1
    logits = torch.tensor([[math.log(2.0), 0.0, 0.0], [0.0, math.log(3.0), 0.0]])
    own = torch.tensor([0, 1])
    # fg: -log((2 + 3) / ((2 + 1 + 1) + (3 + 1 + 1)))
    torch.testing.assert_close(batch_info_nce_foreground(logits, own),
                               torch.tensor(math.log(9 / 5)))
    # bg: mean of the others = 1 in both rows: -log((1 + 1) / ((1 + 2) + (1 + 3)))
    torch.testing.assert_close(batch_info_nce_background(logits, own),
                               torch.tensor(math.log(7 / 2)))
    # one ratio over the batch, not the mean of the per-row losses
    per_row = (math.log(4 / 2) + math.log(5 / 3)) / 2
    assert abs(batch_info_nce_foreground(logits, own).item() - per_row) > 1e-3


@pytest.mark.parametrize('seed', [0, 1])
def test_refiner_infonce_equals_the_design_formulas_with_raw_bank_rows(seed):
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(5, 6, generator=gen) * 3
    protos = torch.randn(C * 3, 6, generator=gen) * 0.4  # rows of norm != 1: not normalised
    own = torch.tensor([0, 4, 4, 7, 11])
    loss = refiner()
    torch.testing.assert_close(loss.foreground_loss(emb, protos, own),
                               design_fg(emb, protos, own, 0.07), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss.background_loss(emb, protos, own),
                               design_bg(emb, protos, own, 0.07), rtol=1e-5, atol=1e-5)
    # LPD's per-cut-out form is another number on the same input
    lpd = MaskRefinerLoss(C, encoder=dict(type='ConvEncoderForTests'))
    assert not torch.isclose(lpd.foreground_loss(emb, protos, own),
                             loss.foreground_loss(emb, protos, own))


def test_large_logits_stay_finite():
    emb = torch.randn(4, 6)
    protos = F.normalize(torch.randn(C * 3, 6), dim=1) * 100  # e^{100/0.07} overflows directly
    own = torch.tensor([0, 1, 2, 3])
    loss = refiner()
    for value in (loss.foreground_loss(emb, protos, own), loss.background_loss(emb, protos, own)):
        assert torch.isfinite(value) and value >= 0


def test_cutout_images_are_min_max_scaled_per_image_and_channel():
    images = torch.tensor([[[[1.0, 3.0], [5.0, 9.0]], [[-2.0, -2.0], [0.0, 2.0]],
                            [[7.0, 7.0], [7.0, 7.0]]]])
    expected = torch.tensor([[[[0.0, 0.25], [0.5, 1.0]], [[0.0, 0.0], [0.5, 1.0]],
                              [[0.0, 0.0], [0.0, 0.0]]]])  # constant channel: 0 / (0 + 1e-8)
    scaled = minmax_per_image_channel(images)
    torch.testing.assert_close(scaled, expected, rtol=0, atol=1e-6)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 8, 8, generator=gen) * 5 + 3
    loss = refiner()
    scaled = loss.cutout_images(images, (8, 8))
    torch.testing.assert_close(scaled.amin(dim=(2, 3)), torch.zeros(2, 3))
    torch.testing.assert_close(scaled.amax(dim=(2, 3)), torch.ones(2, 3))
    # the masks multiply the scaled images: w * x' * h and (1 - w) * x' * (1 - h)
    sim_maps = torch.randn(2, C * 3, 4, 4, generator=gen) * 3
    b_idx, p_idx = torch.tensor([0, 1]), torch.tensor([2, 7])
    fg, bg, _ = loss.cutouts(images, sim_maps, b_idx, p_idx)
    parent = MaskRefinerLoss(C, encoder=dict(type='ConvEncoderForTests'))
    _, weights, hard = parent.soft_hard_masks(images, sim_maps, b_idx, p_idx)
    torch.testing.assert_close(fg, weights * scaled[b_idx] * hard)
    torch.testing.assert_close(bg, (1 - weights) * scaled[b_idx] * (1 - hard))


def head_cfg(**kwargs) -> dict:
    cfg = dict(type='PBIPPublicHead', in_channels=[8, 16, 24, 32], num_classes=C,
               prototypes=dict(type='LearnablePrototypes', num_per_class=2, dim=12),
               proj_hidden=10, loss_warmup_iters=0)
    cfg.update(kwargs)
    return cfg


def test_similarity_uses_unnormalised_projected_prototypes():
    torch.manual_seed(0)
    head = MODELS.build(head_cfg())
    assert isinstance(head, PBIPPublicHead)
    with torch.no_grad():
        head.logit_scales.copy_(torch.tensor([2.0, 3.0, 5.0, 7.0]))
    feats = [torch.randn(2, d, 5, 4) for d in (8, 16, 24, 32)]
    out = head(feats)
    for i in range(4):
        expected = torch.einsum('bdhw,nd->bnhw', F.normalize(feats[i], dim=1),
                                out.stage_prototypes[i]) * head.logit_scales[i]
        torch.testing.assert_close(out.sim_maps[i], expected)
        assert not torch.allclose(out.stage_prototypes[i].norm(dim=1),
                                  torch.ones(out.stage_prototypes[i].shape[0]))
    # the pooled shortcut scores the same unnormalised similarity
    shortcut = head.pooled_scores(feats, out.stage_prototypes, [1, 2, 3])
    for i in (1, 2, 3):
        torch.testing.assert_close(shortcut[i], out.sim_maps[i].mean(dim=(2, 3)),
                                   rtol=1e-4, atol=1e-5)


def build_with_random_bank(path: str, tmp_path):
    """The model of config ``path`` on a random bank (the bank stage's stand-in)."""
    init_default_scope('mmseg')
    cfg = Config.fromfile(path)
    bank = str(tmp_path / 'bank.pth')
    BANK_STAGE.stand_in(cfg, bank)
    cfg.model.decode_head.prototypes.bank_path = bank
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


@pytest.fixture
def built(tmp_path):
    """The CPU config's model on a random bank."""
    return build_with_random_bank(CONFIGS[0], tmp_path)


def test_paper_config_builds(tmp_path):
    model = build_with_random_bank(CONFIGS[1], tmp_path)
    assert isinstance(model, PBIPPublicSegmentor)
    assert isinstance(model.decode_head, PBIPPublicHead)
    assert isinstance(model.decode_head.refiner_loss, PBIPPublicRefinerLoss)
    assert model.protocol.crf is False and model.decode_head.loss_warmup_iters == 0


def test_argmax_over_the_four_tissue_maps_never_predicts_background(built):
    cams = torch.zeros(2, C, 3, 3)  # no class anywhere: LPD would predict background
    cams[0, 2, 0, 0] = 0.4
    labels = torch.tensor([[1.0, 1, 1, 0], [0, 0, 0, 1]])
    scores = built.segmentation_scores(cams, labels)
    assert scores.shape == (2, C, 3, 3)
    pred = scores.argmax(dim=1)
    assert pred.max() < C and pred[0, 0, 0] == 2
    lpd = super(PBIPPublicSegmentor, built).segmentation_scores(cams, labels)
    assert lpd.shape == (2, C + 1, 3, 3) and lpd.argmax(dim=1)[1].eq(C).all()


@pytest.mark.parametrize('path', CONFIGS)
def test_configs_say_what_the_method_is(path):
    cfg = Config.fromfile(path)
    head = cfg.model.decode_head
    assert cfg.default_scope == 'mmseg'
    assert 'baselines' in cfg.custom_imports.imports
    assert cfg.model.type == 'PBIPPublicSegmentor' and head.type == 'PBIPPublicHead'
    assert head.prototypes.type == 'ClusteredPrototypes' and head.prototypes.num_per_class == 3
    assert head.refiner_loss.type == 'PBIPPublicRefinerLoss' and head.loss_warmup_iters == 0
    assert head.refiner_loss.loss_weight == 0.1 and head.refiner_loss.temperature == 0.07
    assert head.refiner_loss.activation_weight == 0.0005
    assert head.diversity_loss is None and cfg.model.test_cfg.crf is False
    assert tuple(cfg.model.test_cfg.fusion_weights) == (0.0, 0.3, 0.3, 0.4)
    assert get_method('pbip_public').configs[{0: 'cpu', 1: 'paper'}[CONFIGS.index(path)]] == path


def test_one_training_step_reaches_the_projections(built):
    model = built
    head = model.decode_head
    assert isinstance(head.refiner_loss, PBIPPublicRefinerLoss)
    model.train()
    data = model.data_preprocessor(random_batch(2, 32, C, seed=1), True)
    losses = model(**data, mode='loss')  # iteration 0: the refiner is already on
    assert {'loss_fg', 'loss_bg', 'loss_act', 'loss_cls_s4'} <= set(losses)
    assert 'loss_div' not in losses
    assert all(torch.isfinite(v) for v in losses.values())
    (losses['loss_fg'] + losses['loss_bg']).backward()  # through the maps into W_4
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in head.projections[3].parameters())
    model.zero_grad(set_to_none=True)
    losses = model(**data, mode='loss')
    sum(losses.values()).backward()
    for stage in (1, 2, 3):
        assert all(p.grad is not None and p.grad.abs().sum() > 0
                   for p in head.projections[stage].parameters())
    assert all(p.grad is None for p in head.refiner_loss.encoder.parameters())
    assert head.prototypes().grad is None and not head.prototypes().requires_grad


def test_one_prediction_is_scored_on_the_5x5_matrix(built):
    model = built
    model.eval()
    data = model.data_preprocessor(random_batch(2, 32, C, seed=2, with_masks=True), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    for sample in results:
        variants = {key for key in sample.keys() if key.startswith('pred_sem_seg_')}
        assert variants == {'pred_sem_seg_oracle', 'pred_sem_seg_predicted'}
        assert tuple(sample.seg_logits.data.shape) == (C, 32, 32)
        assert torch.equal(sample.pred_sem_seg.data, sample.seg_logits.data.argmax(0, True))
        for key in variants:
            assert sample.get(key).data.max() < C  # background (index 4) never predicted
        assert sample.metainfo['protocol']['crf'] is False
        assert sample.metainfo['protocol']['background_channel'] is False
    metric = WSSSMetric()
    metric.process({}, [sample.to_dict() for sample in results])
    scores = metric.compute_metrics(metric.results)
    assert 0 <= scores['mIoU'] <= 100
    assert 'oracle/bg_counted/mIoU' in scores
    assert not any(key.startswith('oracle_crf') for key in scores)

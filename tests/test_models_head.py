"""PrototypeHead and prototype sources: shapes, gradients, merges, image-level loss, warm-up."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from helpers import NUM_CLASSES, STAGE_CHANNELS, samples_with_labels, tiny_head, tiny_mit

import lpd_bench.models  # noqa: F401  (registers the modules)
from lpd_bench.models.prototype_head import merge_maps, merge_scores, merge_weights

def tiny_refiner() -> dict:
    encoder = dict(type='FrozenImageEncoder', feature_dim=8, out_dim=24,
                   backbone=dict(type='MixVisionTransformer', embed_dims=8, num_layers=[1] * 4,
                                 num_heads=[1] * 4, sr_ratios=[8, 4, 2, 1]))
    return dict(type='MaskRefinerLoss', encoder=encoder)


@pytest.fixture(scope='module')
def features():
    torch.manual_seed(0)
    backbone = MODELS.build(tiny_mit())
    backbone.init_weights()
    inputs = torch.randn(2, 3, 64, 48)
    return inputs, [f.detach() for f in backbone(inputs)]


@pytest.fixture
def message_hub():
    hub = MessageHub.get_current_instance()
    previous = hub.get_info('iter', 0)
    yield hub
    hub.update_info('iter', previous)


def test_similarity_maps_per_stage_shapes_and_stage4_keeps_stage3_resolution(features):
    _, feats = features
    head = MODELS.build(tiny_head())
    out = head(feats)
    sizes = [tuple(m.shape) for m in out.sim_maps]
    assert sizes == [(2, 12, 16, 12), (2, 12, 8, 6), (2, 12, 4, 3), (2, 12, 4, 3)]
    assert [tuple(p.shape) for p in out.stage_prototypes] == [(12, d) for d in STAGE_CHANNELS]
    assert tuple(out.raw_prototypes.shape) == (12, 24)
    # scaled cosine: |sim| <= scale, and equal to the hand formula
    expected = F.normalize(feats[3], dim=1).permute(0, 2, 3, 1) @ F.normalize(
        out.stage_prototypes[3], dim=1).t()
    torch.testing.assert_close(out.sim_maps[3], expected.permute(0, 3, 1, 2) / 0.07)


def test_only_requested_stages_are_computed(features):
    _, feats = features
    out = MODELS.build(tiny_head())(feats, stages=[3])
    assert out.sim_maps[:3] == [None, None, None] and out.sim_maps[3] is not None


def test_gradients_reach_prototypes_projections_and_scales(features):
    inputs, feats = features
    head = MODELS.build(tiny_head())
    losses = head.loss(feats, samples_with_labels([[1, 0, 1, 0], [0, 1, 0, 0]]), inputs)
    sum(losses.values()).backward()
    assert head.prototypes.prototypes.grad.abs().sum() > 0
    for stage in (1, 2, 3):
        for param in head.projections[stage].parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0
        assert head.logit_scales.grad[stage] != 0
    # stage 1 has loss weight 0: not computed at all
    assert all(p.grad is None for p in head.projections[0].parameters())
    assert head.logit_scales.grad[0] == 0


def test_test_time_merge_is_softmax_weighted_mean_on_hand_example():
    # class 0: scores (0, ln 3) -> softmax (1/4, 3/4); class 1: (2, 2) -> (1/2, 1/2)
    scores = torch.tensor([[0.0, math.log(3.0), 2.0, 2.0]])
    weights = merge_weights(scores, num_classes=2, mode='softmax')
    torch.testing.assert_close(weights, torch.tensor([[[0.25, 0.75], [0.5, 0.5]]]))
    torch.testing.assert_close(merge_scores(scores, weights),
                               torch.tensor([[0.75 * math.log(3.0), 2.0]]))


def test_train_time_merge_is_mean_and_map_merge_matches_score_merge():
    torch.manual_seed(1)
    maps = torch.randn(2, 6, 5, 4)
    scores = maps.mean(dim=(2, 3))
    mean_weights = merge_weights(scores, num_classes=3, mode='mean')
    torch.testing.assert_close(merge_scores(scores, mean_weights), scores.view(2, 3, 2).mean(-1))
    torch.testing.assert_close(merge_maps(maps, mean_weights), maps.view(2, 3, 2, 5, 4).mean(2))
    soft = merge_weights(scores, num_classes=3, mode='softmax')
    torch.testing.assert_close(merge_maps(maps, soft).mean(dim=(2, 3)), merge_scores(scores, soft))
    with pytest.raises(ValueError, match="'mean' or 'softmax'"):
        merge_weights(scores, 3, 'max')


def test_classification_loss_is_weighted_bce_on_mean_merged_scores(features):
    inputs, feats = features
    head = MODELS.build(tiny_head())
    labels = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])
    losses = head.loss(feats, samples_with_labels(labels.int().tolist()), inputs)
    assert set(losses) == {'loss_cls_s2', 'loss_cls_s3', 'loss_cls_s4'}
    out = head(feats)
    for stage, weight in ((1, 0.1), (2, 1.0), (3, 1.0)):
        scores = out.sim_maps[stage].mean(dim=(2, 3)).view(2, NUM_CLASSES, 3).mean(-1)
        expected = weight * F.binary_cross_entropy_with_logits(scores, labels)
        torch.testing.assert_close(losses[f'loss_cls_s{stage + 1}'], expected)


@pytest.mark.parametrize('source', ['LearnablePrototypes', 'StageClassVectors'])
def test_pooled_scores_equal_map_means_with_the_same_gradients(features, source):
    """The classification loss scores stages from pooled features, without building the maps."""
    _, feats = features
    protos = (dict(type=source, num_per_class=3, dim=24) if source == 'LearnablePrototypes' else
              dict(type=source))
    head = MODELS.build(tiny_head(prototypes=protos))
    with torch.no_grad():
        head.logit_scales.copy_(torch.tensor([3.0, 5.0, 7.0, 11.0]))
    feats = [f.clone().requires_grad_(True) for f in feats]
    weights = torch.randn(2, head(feats).sim_maps[0].shape[1])

    def grads(scores_of):
        head.zero_grad(set_to_none=True)
        for f in feats:
            f.grad = None
        scores = scores_of()
        sum((scores[i] * weights).sum() for i in (1, 2, 3)).backward()
        return ([scores[i].detach() for i in (1, 2, 3)], [f.grad.clone() for f in feats[1:]],
                [p.grad.clone() for p in head.parameters() if p.grad is not None])

    def from_maps():
        out = head(feats)
        return {i: out.sim_maps[i].mean(dim=(2, 3)) for i in (1, 2, 3)}

    def pooled():
        stage_protos, _ = head._stage_prototypes([1, 2, 3])
        return head.pooled_scores(feats, stage_protos, [1, 2, 3])

    expected, got = grads(from_maps), grads(pooled)
    for want, have in zip(expected, got):
        assert len(want) == len(have) > 0
        for a, b in zip(want, have):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_loss_reads_image_labels_only(features):
    inputs, feats = features
    head = MODELS.build(tiny_head())
    samples = samples_with_labels([[1, 0, 1, 0], [0, 1, 0, 0]])
    reference = head.loss(feats, samples, inputs)['loss_cls_s4']
    for sample in samples:  # a mask, if present, is ignored
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, 64, 48)))
    assert head.loss(feats, samples, inputs)['loss_cls_s4'] == reference
    flipped = samples_with_labels([[0, 1, 0, 1], [1, 0, 1, 1]])
    assert head.loss(feats, flipped, inputs)['loss_cls_s4'] != reference
    with pytest.raises(KeyError, match="img3.png has no metainfo 'img_label'"):
        head.loss(feats, [SegDataSample(metainfo=dict(img_path='img3.png'))] * 2, inputs)
    with pytest.raises(ValueError, match='must be 4 values'):
        head.loss(feats, samples_with_labels([[1, 0, 1], [0, 1, 0]]), inputs)


def test_warmup_switches_diversity_and_refiner_on(features, message_hub):
    inputs, feats = features
    head = MODELS.build(
        tiny_head(loss_warmup_iters=5,
                  diversity_loss=dict(type='PrototypeDiversityLoss', loss_weight=0.5),
                  diversity_prototypes='projected',  # P is 24-d, stage 4 is 128 wide
                  refiner_loss=tiny_refiner()))
    samples = samples_with_labels([[1, 0, 1, 0], [0, 1, 0, 1]])
    message_hub.update_info('iter', 4)
    before = head.loss(feats, samples, inputs)
    assert set(before) == {'loss_cls_s2', 'loss_cls_s3', 'loss_cls_s4'}
    message_hub.update_info('iter', 5)
    after = head.loss(feats, samples, inputs)
    assert set(after) == set(before) | {'loss_div', 'loss_fg', 'loss_bg', 'loss_act'}
    after['loss_div'].backward()
    assert head.prototypes.prototypes.grad.abs().sum() > 0


def test_stage_class_vectors_head_has_no_projection_and_rejects_refiner(features):
    _, feats = features
    head = MODELS.build(tiny_head(prototypes=dict(type='StageClassVectors')))
    assert head.projections is None
    out = head(feats)
    assert out.raw_prototypes is None
    assert [tuple(p.shape) for p in out.stage_prototypes] == [(4, d) for d in STAGE_CHANNELS]
    assert tuple(out.sim_maps[2].shape) == (2, 4, 4, 3)
    with pytest.raises(ValueError, match='unprojected source'):
        MODELS.build(tiny_head(prototypes=dict(type='StageClassVectors'),
                               refiner_loss=tiny_refiner()))


def test_prototype_source_contract_and_bad_config():
    source = MODELS.build(dict(type='LearnablePrototypes', num_classes=4, num_per_class=10))
    assert source.projected and source.num_prototypes == 40
    assert tuple(source().shape) == (40, 512)
    assert abs(source().std().item() - 1.0) < 0.1  # standard-normal init
    with pytest.raises(NotImplementedError, match='projected'):
        source.stage_prototypes()
    with pytest.raises(ValueError, match='num_per_class must be a positive int'):
        MODELS.build(dict(type='LearnablePrototypes', num_classes=4, num_per_class=0))
    with pytest.raises(ValueError, match='stage_loss_weights'):
        MODELS.build(tiny_head(stage_loss_weights=[1.0, 1.0]))


@pytest.mark.parametrize('frozen', [False, True])
def test_frozen_learnable_prototypes_keep_their_initialisation(frozen):
    torch.manual_seed(0)
    source = MODELS.build(dict(type='LearnablePrototypes', num_classes=4, num_per_class=2, dim=8,
                               frozen=frozen))
    assert set(source.state_dict()) == {'prototypes'}  # checkpoints load either way
    assert source.prototypes.requires_grad is not frozen
    before = source().detach().clone()
    weight = torch.nn.Parameter(torch.randn(8, 3))  # something learnable downstream
    weight_before = weight.detach().clone()
    optimizer = torch.optim.AdamW([*source.parameters(), weight], lr=0.1, weight_decay=0.1)
    loss = (source() @ weight).square().mean()
    loss.backward()
    optimizer.step()
    assert (source.prototypes.grad is None) is frozen
    assert torch.equal(source(), before) is frozen
    assert not torch.equal(weight.detach(), weight_before)  # the step ran


def test_predict_class_maps_and_probabilities(features):
    _, feats = features
    head = MODELS.build(tiny_head())
    class_maps, probs = head.predict_class_maps(feats, stages=[1, 2])
    assert class_maps[0] is None and class_maps[3] is None
    assert tuple(class_maps[1].shape) == (2, 4, 8, 6) and tuple(class_maps[2].shape) == (2, 4, 4, 3)
    out = head(feats)
    scores = out.sim_maps[3].mean(dim=(2, 3))
    # default gating score: the mean merge the classification loss trains
    expected = merge_scores(scores, merge_weights(scores, NUM_CLASSES, 'mean')).sigmoid()
    torch.testing.assert_close(probs, expected)
    _, soft_probs = head.predict_class_maps(feats, stages=[1, 2], gating_score='softmax')
    expected = merge_scores(scores, merge_weights(scores, NUM_CLASSES, 'softmax')).sigmoid()
    torch.testing.assert_close(soft_probs, expected)


def class_bce(proto_scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BCE of the mean-merged class scores, the classification loss of one stage."""
    merged = merge_scores(proto_scores, merge_weights(proto_scores, NUM_CLASSES, 'mean'))
    return F.binary_cross_entropy_with_logits(merged, labels)


def test_max_pooling_scores_are_the_maxima_of_the_maps(features):
    _, feats = features
    head = MODELS.build(tiny_head(pooling='max'))
    with_maps = head(feats)
    without_maps = head(feats, stages=[], prototype_stages=[1, 2, 3])
    assert without_maps.sim_maps == [None] * 4
    for out in (with_maps, without_maps):
        scores = head.prototype_scores(feats, out, [1, 2, 3])
        for i in (1, 2, 3):
            torch.testing.assert_close(scores[i], with_maps.sim_maps[i].amax(dim=(2, 3)))
    torch.testing.assert_close(head.pool_map(with_maps.sim_maps[3]),
                               with_maps.sim_maps[3].flatten(2).max(dim=2).values)
    with pytest.raises(ValueError, match='mean-pooling shortcut'):
        head.pooled_scores(feats, with_maps.stage_prototypes, [3])
    with pytest.raises(ValueError, match="pooling must be one of"):
        MODELS.build(tiny_head(pooling='median'))


def test_mean_pooling_with_and_without_the_shortcut_agree(features):
    _, feats = features
    head = MODELS.build(tiny_head())
    assert head.pooling == 'mean'
    with_maps = head(feats)
    without_maps = head(feats, stages=[], prototype_stages=[1, 2, 3])
    from_maps = head.prototype_scores(feats, with_maps, [1, 2, 3])
    shortcut = head.prototype_scores(feats, without_maps, [1, 2, 3])
    for i in (1, 2, 3):
        torch.testing.assert_close(from_maps[i], with_maps.sim_maps[i].mean(dim=(2, 3)))
        torch.testing.assert_close(shortcut[i], from_maps[i], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('pooling', ['mean', 'max'])
def test_loss_refiner_selection_and_predict_class_maps_use_the_head_pooling(
        features, message_hub, monkeypatch, pooling):
    inputs, feats = features
    head = MODELS.build(tiny_head(pooling=pooling, refiner_loss=tiny_refiner()))
    pool = (lambda maps: maps.mean(dim=(2, 3))) if pooling == 'mean' else (
        lambda maps: maps.amax(dim=(2, 3)))
    labels = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 1]])
    seen = {}

    def refiner(images, sim_maps, prototypes, img_labels, proto_scores):
        seen['proto_scores'] = proto_scores
        return {}

    monkeypatch.setattr(head.refiner_loss, 'forward', refiner)
    message_hub.update_info('iter', 0)
    losses = head.loss(feats, samples_with_labels(labels.int().tolist()), inputs)
    out = head(feats)
    for stage, weight in ((1, 0.1), (2, 1.0), (3, 1.0)):
        torch.testing.assert_close(losses[f'loss_cls_s{stage + 1}'],
                                   weight * class_bce(pool(out.sim_maps[stage]), labels))
    torch.testing.assert_close(seen['proto_scores'], pool(out.sim_maps[3]))
    scores = pool(out.sim_maps[3])
    expected = merge_scores(scores, merge_weights(scores, NUM_CLASSES, 'mean')).sigmoid()
    for stages in ([1, 2], [1, 2, 3]):  # stage 4 without and with its map
        _, probs = head.predict_class_maps(feats, stages=stages)
        torch.testing.assert_close(probs, expected, rtol=1e-4, atol=1e-5)
    class_maps, _ = head.predict_class_maps(feats, stages=[2], map_merge='per_image')
    weights = merge_weights(pool(out.sim_maps[2]), NUM_CLASSES, 'softmax')
    torch.testing.assert_close(class_maps[2], merge_maps(out.sim_maps[2], weights))


def test_pool_map_is_the_one_place_a_map_becomes_a_score(features, monkeypatch):
    """Replacing ``pool_map`` changes the loss and the test-time probabilities alike."""
    inputs, feats = features
    head = MODELS.build(tiny_head(pooling='max'))
    monkeypatch.setattr(head, 'pool_map', lambda maps: maps.amin(dim=(2, 3)))
    labels = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 1]])
    losses = head.loss(feats, samples_with_labels(labels.int().tolist()), inputs)
    out = head(feats)
    torch.testing.assert_close(losses['loss_cls_s4'],
                               class_bce(out.sim_maps[3].amin(dim=(2, 3)), labels))
    scores = out.sim_maps[3].amin(dim=(2, 3))
    _, probs = head.predict_class_maps(feats, stages=[1, 2])
    torch.testing.assert_close(
        probs, merge_scores(scores, merge_weights(scores, NUM_CLASSES, 'mean')).sigmoid())

"""PrototypeDiversityLoss: behaviour, both variants, vectorised form == loop reference."""
import pytest
import torch
import torch.nn.functional as F

from lpd_bench.models.losses.diversity import PrototypeDiversityLoss, pseudo_label_map
from mmseg.registry import MODELS

C = 4


def reference_diversity_loss(feats, protos, sim_maps, img_labels, variant, temperature, bg_score):
    """Plain loops over images, classes, prototypes and pairs (unweighted loss).

    corrected: classes in the image label with >= 2 pixels, mean over classes, then over images
    with one; public: every class with a non-empty region, summed, divided by the batch size."""
    b_size, _, h, w = feats.shape
    k = protos.shape[0] // C
    per_image = []
    for b in range(b_size):
        class_means = [sim_maps[b, c * k:(c + 1) * k].mean(0) for c in range(C)]
        bg = torch.full((h, w), bg_score)
        channels = class_means + [bg] if variant == 'corrected' else [bg] + class_means
        labels = torch.stack(channels).argmax(0).flatten()
        per_class = []
        for c in range(C):
            pixels = (labels == c).nonzero().flatten()
            if k < 2 or (len(pixels) < 1 if variant == 'public' else
                         (img_labels[b, c] == 0 or len(pixels) < 2)):
                continue
            f = feats[b].flatten(1)[:, pixels]
            log_dists = []
            for u in range(k):
                cos = F.cosine_similarity(f, protos[c * k + u][:, None], dim=0)
                if variant == 'corrected':
                    log_dists.append(torch.log_softmax(cos / temperature, 0))
                else:
                    log_dists.append(torch.log_softmax(torch.softmax(cos, 0), 0))
            penalties = []
            for u in range(k):
                for v in range(k):
                    if u == v:
                        continue
                    lu, lv = log_dists[u], log_dists[v]
                    jeffreys = (lu.exp() * (lu - lv)).sum() + (lv.exp() * (lv - lu)).sum()
                    penalties.append(torch.exp(-jeffreys))
            per_class.append(torch.stack(penalties).mean())
        if per_class and variant == 'public':
            per_image.append(torch.stack(per_class).sum())
        elif per_class:
            per_image.append(torch.stack(per_class).mean())
    if not per_image:
        return torch.tensor(0.0)
    return torch.stack(per_image).sum() / b_size if variant == 'public' else \
        torch.stack(per_image).mean()


def random_inputs(b=3, k=3, d=8, h=6, w=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, d, h, w, generator=gen)
    protos = torch.randn(C * k, d, generator=gen)
    sim_maps = torch.randn(b, C * k, h, w, generator=gen)
    img_labels = (torch.rand(b, C, generator=gen) > 0.3).float()
    img_labels[0] = torch.tensor([1., 1., 0., 1.])
    return feats, protos, sim_maps, img_labels


def one_class_image(protos_rows, h=4, w=4):
    """All pixels are TUM; left half has feature e0, right half e1."""
    feats = torch.zeros(1, 2, h, w)
    feats[0, 0, :, :w // 2] = 1
    feats[0, 1, :, w // 2:] = 1
    k = len(protos_rows)
    protos = torch.tensor(protos_rows * C, dtype=torch.float)  # every class gets the same rows
    sim_maps = torch.full((1, C * k, h, w), -1.0)
    sim_maps[:, :k] = 1.0
    return feats, protos, sim_maps, torch.tensor([[1., 0., 0., 0.]])


def test_registered_and_bad_arguments():
    loss = MODELS.build(dict(type='PrototypeDiversityLoss', num_classes=C))
    assert isinstance(loss, PrototypeDiversityLoss) and loss.variant == 'corrected'
    with pytest.raises(ValueError, match="variant must be one of.*'buggy'"):
        PrototypeDiversityLoss(C, variant='buggy')
    with pytest.raises(ValueError, match='temperature must be > 0'):
        PrototypeDiversityLoss(C, temperature=0)
    feats, protos, sim_maps, labels = random_inputs()
    with pytest.raises(ValueError, match=r'protos must be \(C\*k, D\)'):
        loss(feats, protos[:-1], sim_maps, labels)
    with pytest.raises(ValueError, match='sim_maps must be'):
        loss(feats, protos, sim_maps[:, :, :-1], labels)
    with pytest.raises(ValueError, match='img_labels must be'):
        loss(feats, protos, sim_maps, labels[:, :2])


def test_disjoint_prototypes_score_lower_than_identical():
    loss = PrototypeDiversityLoss(C, loss_weight=1.0)
    disjoint = loss(*one_class_image([[1., 0.], [0., 1.]]))
    identical = loss(*one_class_image([[1., 0.], [1., 0.]]))
    assert identical.item() == pytest.approx(1.0, abs=1e-6)  # J = 0 -> exp(0)
    assert disjoint.item() < 1e-3


def test_loss_weight_scales():
    inputs = random_inputs()
    base = PrototypeDiversityLoss(C, loss_weight=1.0)(*inputs)
    assert PrototypeDiversityLoss(C, loss_weight=0.5)(*inputs).item() == pytest.approx(
        0.5 * base.item())


@pytest.mark.parametrize('variant', ['corrected', 'public'])
@pytest.mark.parametrize('seed', [0, 1])
def test_vectorised_matches_loop_reference(variant, seed):
    feats, protos, sim_maps, labels = random_inputs(seed=seed)
    feats.requires_grad_(True)
    protos.requires_grad_(True)
    loss = PrototypeDiversityLoss(C, variant=variant, temperature=0.1, bg_score=0.2,
                                  loss_weight=1.0)
    fast = loss(feats, protos, sim_maps, labels)
    ref = reference_diversity_loss(feats, protos, sim_maps, labels, variant, 0.1, 0.2)
    assert fast.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-7)
    grads_fast = torch.autograd.grad(fast, (feats, protos))
    grads_ref = torch.autograd.grad(ref, (feats, protos))
    for g_fast, g_ref in zip(grads_fast, grads_ref):
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-4, atol=1e-7)


def test_corrected_has_usable_gradient_public_almost_none():
    # Nearly collapsed prototypes (each class: one row + small noise), stage-4-like 14x14 maps.
    feats, protos, sim_maps, labels = random_inputs(b=4, k=3, d=32, h=14, w=14, seed=3)
    noise = 0.3 * torch.randn(C * 3, 32, generator=torch.Generator().manual_seed(0))
    collapsed = protos.reshape(C, 3, 32)[:, :1].expand(C, 3, 32).reshape(C * 3, 32) + noise
    norms, values = {}, {}
    for variant in ('corrected', 'public'):
        p = collapsed.clone().requires_grad_(True)
        value = PrototypeDiversityLoss(C, variant=variant, loss_weight=1.0)(feats, p, sim_maps,
                                                                             labels)
        value.backward()
        norms[variant], values[variant] = p.grad.norm().item(), value.item()
    # public: each contributing (image, class) penalty is ~1, summed and divided by B
    pseudo = pseudo_label_map(sim_maps, C, 0.2, 'public')
    contributing = sum(int((pseudo == c).any(dim=(1, 2)).sum()) for c in range(C))
    assert values['public'] == pytest.approx(contributing / 4, abs=1e-4)
    assert values['corrected'] < 0.9
    assert norms['corrected'] > 0.05
    assert norms['public'] < 1e-3 * norms['corrected']


def test_public_variant_reads_class_index_off_by_one():
    # Every pixel is background (class means below bg_score) and the image is labelled TUM.
    feats, protos, _, labels = random_inputs(b=1, k=2, seed=4)
    labels = torch.tensor([[1., 0., 0., 0.]])
    sim_maps = torch.full((1, C * 2, 6, 6), -1.0)
    corrected = PrototypeDiversityLoss(C, variant='corrected')(feats, protos, sim_maps, labels)
    public = PrototypeDiversityLoss(C, variant='public')(feats, protos, sim_maps, labels)
    assert corrected.item() == 0.0  # no TUM pixels
    assert public.item() > 0.0  # TUM prototypes read the background pixels


def test_pseudo_label_map_orders_channels():
    sim_maps = torch.full((1, C * 2, 1, 3), -1.0)
    sim_maps[0, 2:4, 0, 0] = 1.0  # STR wins pixel 0
    sim_maps[0, 6:8, 0, 1] = 1.0  # NEC wins pixel 1; pixel 2 is background
    assert pseudo_label_map(sim_maps, C, 0.2, 'corrected').tolist() == [[[1, 3, 4]]]
    assert pseudo_label_map(sim_maps, C, 0.2, 'public').tolist() == [[[2, 4, 0]]]


@pytest.mark.parametrize('case', ['k1', 'no_label', 'one_pixel'])
def test_nothing_contributes_gives_zero_with_graph(case):
    k = 1 if case == 'k1' else 2
    feats, protos, sim_maps, labels = random_inputs(b=2, k=k, seed=5)
    if case == 'no_label':
        labels = torch.zeros_like(labels)
    if case == 'one_pixel':
        sim_maps = torch.full_like(sim_maps, -1.0)
        sim_maps[:, :, 0, 0] = 1.0  # a single pixel per image, all classes tie -> TUM
    protos.requires_grad_(True)
    value = PrototypeDiversityLoss(C)(feats, protos, sim_maps, labels)
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(protos.grad, torch.zeros_like(protos))


def test_present_class_with_empty_region_keeps_gradients_finite():
    feats, protos, sim_maps, _ = random_inputs(b=1, k=2, seed=6)
    sim_maps[:, 2:] = -5.0  # only TUM (or background) can win
    sim_maps[:, :2, :3] = 5.0
    labels = torch.ones(1, C)  # STR, LYM, NEC present but own no pixel
    protos.requires_grad_(True)
    value = PrototypeDiversityLoss(C)(feats, protos, sim_maps, labels)
    value.backward()
    assert torch.isfinite(protos.grad).all() and protos.grad[:2].abs().sum() > 0
    assert protos.grad[2:].abs().sum() == 0

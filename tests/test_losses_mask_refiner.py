"""MaskRefinerLoss: selection rule, both cut-out forms, vectorised == per-prototype loop,
chunking, gradients. (The public form's hand-computed cases: tests/test_fidelity_training.py.)"""
import math

import pytest
import helpers  # noqa: F401  (registers ConvEncoderForTests)
import torch
import torch.nn.functional as F

from lpd_bench.models.losses.mask_refiner import MaskRefinerLoss, select_prototypes
from mmseg.registry import MODELS

C = 4


def make_refiner(**kwargs):
    return MaskRefinerLoss(C, encoder=dict(type='ConvEncoderForTests', out_dim=6), **kwargs)


def random_inputs(b=3, k=3, h=4, size=16, dim=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(b, 3, size, size, generator=gen)
    sim_maps = torch.randn(b, C * k, h, h, generator=gen).mul(3).requires_grad_(True)
    prototypes = torch.randn(C * k, dim, generator=gen).requires_grad_(True)
    img_labels = (torch.rand(b, C, generator=gen) > 0.4).float()
    img_labels[0, :2] = 1
    proto_scores = torch.randn(b, C * k, generator=gen)
    return images, sim_maps, prototypes, img_labels, proto_scores


def reference_weight_and_mask(refiner, sim_maps, b, p, size):
    """Weight map and hard mask (1, H, W) of prototype p in image b, straight from the formulas."""
    if refiner.cutout_form == 'public':
        up = F.interpolate(sim_maps[b][None], size=size, mode='bilinear', align_corners=True)[0]
        m = up[p][None]
        return m, (m >= 0.5 * up.detach().max()).float()
    image_max = sim_maps[b].max()
    m = F.interpolate(sim_maps[b, p][None, None], size=size, mode='bilinear',
                      align_corners=False)[0]
    return m.clamp(min=0) / image_max.clamp(min=1e-6), (m > 0.5 * image_max).float()


def reference_refiner(refiner, images, sim_maps, prototypes, img_labels, proto_scores):
    """One prototype at a time: selection, cut-outs, one encoder call per cut-out, losses."""
    n = prototypes.shape[0]
    k = n // C
    t, w = refiner.temperature, refiner.loss_weight
    single = refiner.selection == 'all_if_single'
    skip = refiner.blank_cutouts == 'skip'
    fg_losses, bg_losses = [], []
    for b in range(images.shape[0]):
        for c in range(C):
            scores = proto_scores[b, c * k:(c + 1) * k]
            for j in range(k):
                if img_labels[b, c] == 0 or not ((k == 1 and single) or scores[j] > scores.mean()):
                    continue
                p = c * k + j
                soft, hard = reference_weight_and_mask(refiner, sim_maps, b, p, images.shape[-2:])
                if hard.any() or not skip:  # empty foreground: left out
                    fg = refiner.encoder((soft * images[b] * hard)[None])[0]
                    sim = torch.stack([F.cosine_similarity(fg, prototypes[q], 0) for q in range(n)])
                    fg_losses.append(torch.logsumexp(sim / t, 0) - sim[p] / t)
                if not hard.all() or not skip:  # empty background: left out
                    bg = refiner.encoder(((1 - soft) * images[b] * (1 - hard))[None])[0]
                    sim = torch.stack([F.cosine_similarity(bg, prototypes[q], 0) for q in range(n)])
                    others = [q for q in range(n) if q != p]
                    bg_losses.append(torch.logsumexp(sim / t, 0)
                                     - torch.logsumexp(sim[others] / t, 0))
    return dict(loss_fg=w * torch.stack(fg_losses).mean(),
                loss_bg=w * torch.stack(bg_losses).mean(),
                loss_act=w * refiner.activation_weight * sim_maps.mean())


@pytest.mark.parametrize('selection', ['public', 'all_if_single'])
def test_selection_rule(selection):
    scores = torch.tensor([[3., 1., 2., 0., 0., 0., 5., 5., -1., 1., 1., 4.]])  # C=4, k=3
    labels = torch.tensor([[1., 0., 1., 1.]])
    # TUM: mean 2 -> only 3 selected; STR absent; LYM: mean 3 -> both 5s; NEC: mean 2 -> 4.
    expected = [[1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1]]
    assert select_prototypes(scores, labels, C, selection).int().tolist() == expected
    k1 = select_prototypes(torch.randn(2, C), torch.tensor([[1., 0., 0., 1.], [0., 1., 0., 0.]]), C,
                           selection)
    # public: a single score is never above its own mean; all_if_single: the earlier rule
    assert k1.int().tolist() == ([[0] * 4] * 2 if selection == 'public' else
                                 [[1, 0, 0, 1], [0, 1, 0, 0]])


def test_registered_and_bad_arguments():
    refiner = MODELS.build(dict(type='MaskRefinerLoss', num_classes=C,
                                encoder=dict(type='ConvEncoderForTests')))
    assert isinstance(refiner, MaskRefinerLoss)
    with pytest.raises(ValueError, match='chunk_size must be None or >= 1'):
        make_refiner(chunk_size=0)
    with pytest.raises(ValueError, match="encoder_autocast must be one of .* got 'bf16'"):
        make_refiner(encoder_autocast='bf16')
    with pytest.raises(ValueError, match="cutout_form must be one of .* got 'soft'"):
        make_refiner(cutout_form='soft')
    with pytest.raises(ValueError, match="selection must be one of .* got 'all'"):
        make_refiner(selection='all')
    with pytest.raises(ValueError, match="blank_cutouts must be one of .* got 'drop'"):
        make_refiner(blank_cutouts='drop')
    images, sim_maps, protos, labels, scores = random_inputs()
    with pytest.raises(ValueError, match=r'proto_scores must be \(3, 12\)'):
        refiner(images, sim_maps, protos, labels, scores[:, :-1])
    with pytest.raises(ValueError, match='prototypes must be'):
        refiner(images, sim_maps, protos[:-1], labels, scores)
    with pytest.raises(ValueError, match='img_labels must be'):
        refiner(images, sim_maps, protos, labels[:, :3], scores)


@pytest.mark.parametrize('form', ['public', 'soft_normalized'])
@pytest.mark.parametrize('k,seed,selection,blank', [
    (3, 0, 'public', 'skip'), (3, 1, 'public', 'skip'), (1, 2, 'all_if_single', 'skip'),
    (3, 1, 'public', 'embed')])
def test_vectorised_matches_per_prototype_loop(form, k, seed, selection, blank):
    refiner = make_refiner(loss_weight=0.1, activation_weight=0.0005, cutout_form=form,
                           selection=selection, blank_cutouts=blank)
    inputs = random_inputs(k=k, seed=seed)
    fast = refiner(*inputs)
    ref = reference_refiner(refiner, *inputs)
    images, sim_maps, protos = inputs[:3]
    for name in ('loss_fg', 'loss_bg', 'loss_act'):
        assert fast[name].item() == pytest.approx(ref[name].item(), rel=1e-5), name
    total_fast = sum(fast.values())
    total_ref = sum(ref.values())
    for g_fast, g_ref in zip(torch.autograd.grad(total_fast, (sim_maps, protos)),
                             torch.autograd.grad(total_ref, (sim_maps, protos))):
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('chunk_size,checkpoint_encoder', [(3, False), (3, True), (None, True)])
def test_chunked_and_checkpointed_equal_single_call(chunk_size, checkpoint_encoder):
    inputs = random_inputs(seed=3)
    sim_maps, protos = inputs[1:3]
    plain = make_refiner()(*inputs)
    grads_plain = torch.autograd.grad(sum(plain.values()), (sim_maps, protos))
    other = make_refiner(chunk_size=chunk_size, checkpoint_encoder=checkpoint_encoder)(*inputs)
    grads_other = torch.autograd.grad(sum(other.values()), (sim_maps, protos))
    for name in plain:
        torch.testing.assert_close(other[name], plain[name], rtol=1e-6, atol=1e-7)
    for g_other, g_plain in zip(grads_other, grads_plain):
        torch.testing.assert_close(g_other, g_plain, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('devices,chunked', [(None, True), (('cpu', ), True), (('cuda', ), False)])
def test_memory_levers_apply_on_the_listed_devices_only(devices, chunked):
    inputs = random_inputs(seed=3)
    refiner = make_refiner(chunk_size=3, checkpoint_encoder=False, memory_saving_devices=devices)
    sizes = []
    hook = refiner.encoder.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    refiner(*inputs)
    hook.remove()
    assert sum(sizes) > 9  # more than three chunks' worth of cut-outs
    if chunked:  # the inputs are on CPU
        assert max(sizes) == 3 and len(sizes) == math.ceil(sum(sizes) / 3)
    else:
        assert len(sizes) == 1


@pytest.mark.parametrize('above,chunked', [(None, True), (5, True), (1000, False)])
def test_memory_levers_apply_above_a_cutout_count_only(above, chunked):
    inputs = random_inputs(seed=3)
    refiner = make_refiner(chunk_size=3, memory_saving_above=above)
    sizes = []
    hook = refiner.encoder.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    refiner(*inputs)
    hook.remove()
    assert sum(sizes) > 5
    assert (max(sizes) == 3) if chunked else (sizes == [sum(sizes)])
    with pytest.raises(ValueError, match='memory_saving_above must be None or >= 0'):
        make_refiner(memory_saving_above=-1)


def conv_output_dtypes(refiner, inputs):
    """dtypes seen at the encoder's conv output during one forward, and the losses."""
    seen = []
    hook = refiner.encoder.conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    losses = refiner(*inputs)
    hook.remove()
    return set(seen), losses


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('checkpoint_encoder', [False, True])
def test_bf16_encoder_autocast_close_to_fp32(seed, checkpoint_encoder):
    """bf16 (8-bit mantissa) vs fp32: losses within 2% relative, gradients of the maps and the
    prototypes within 10% in relative L2 norm (observed: <= 0.9% and <= 2.7%)."""
    inputs = random_inputs(seed=seed)
    sim_maps, protos = inputs[1:3]
    dtypes32, fp32 = conv_output_dtypes(make_refiner(), inputs)
    dtypes16, bf16 = conv_output_dtypes(
        make_refiner(encoder_autocast='bfloat16', checkpoint_encoder=checkpoint_encoder,
                     chunk_size=4), inputs)
    assert dtypes32 == {torch.float32} and dtypes16 == {torch.bfloat16}  # fp32 is the default
    for name in fp32:
        assert bf16[name].dtype == torch.float32
        assert bf16[name].item() == pytest.approx(fp32[name].item(), rel=2e-2), name
    grads32 = torch.autograd.grad(sum(fp32.values()), (sim_maps, protos))
    grads16 = torch.autograd.grad(sum(bf16.values()), (sim_maps, protos))
    for g16, g32 in zip(grads16, grads32):
        assert g16.dtype == torch.float32 and g16.abs().sum() > 0
        assert ((g16 - g32).norm() / g32.norm()).item() < 0.1


def test_gradients_reach_maps_and_prototypes_not_encoder():
    refiner = make_refiner(activation_weight=0.0)
    images, sim_maps, protos, _, _ = random_inputs(b=1, k=2, seed=4)
    labels = torch.tensor([[1., 0., 0., 0.]])
    scores = torch.tensor([[1., 0., 0., 0., 0., 0., 0., 0.]])  # only prototype 0 selected
    with torch.no_grad():
        sim_maps[0, 0] = sim_maps[0, 0].abs() + 1.0  # prototype 0 also holds the image max
    losses = refiner(images, sim_maps, protos, labels, scores)
    (losses['loss_fg'] + losses['loss_bg']).backward()
    per_channel = sim_maps.grad.abs().sum((0, 2, 3))
    assert per_channel[0] > 0 and per_channel[1:].sum() == 0
    assert protos.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in refiner.encoder.parameters())


def test_foreground_loss_prefers_the_selected_prototype():
    refiner = make_refiner()
    images, sim_maps, protos, _, _ = random_inputs(b=1, k=2, seed=5)
    labels = torch.tensor([[1., 0., 0., 0.]])
    scores = torch.tensor([[1., 0., 0., 0., 0., 0., 0., 0.]])  # prototype 0 selected
    b_idx, p_idx = torch.tensor([0]), torch.tensor([0])
    with torch.no_grad():
        fg, _, _ = refiner.cutouts(images, sim_maps, b_idx, p_idx)
        emb = refiner.encoder(fg)[0]
        matching, wrong = protos.detach().clone(), protos.detach().clone()
        matching[0] = emb
        wrong[1] = emb
        good = refiner(images, sim_maps, matching, labels, scores)['loss_fg']
        bad = refiner(images, sim_maps, wrong, labels, scores)['loss_fg']
    assert good < refiner.loss_weight * math.log(C * 2) < bad


@pytest.mark.parametrize('form', ['public', 'soft_normalized'])
def test_cutouts_are_masked_by_the_map(form):
    refiner = make_refiner(cutout_form=form)
    images = torch.ones(1, 3, 8, 8)
    sim_maps = torch.zeros(1, C, 2, 2)
    sim_maps[0, 0, 0, 0] = 4.0  # top-left quadrant of prototype 0 is the image max
    fg, bg, covered = refiner.cutouts(images, sim_maps, torch.tensor([0]), torch.tensor([0]))
    assert 0 < covered.item() < 1
    # public: the raw map (4 at the corner, align_corners=True); soft_normalized: map / max
    corner = 4.0 if form == 'public' else 1.0
    assert fg[0, :, 0, 0].tolist() == [corner] * 3 and fg[0, :, 7, 7].abs().sum() == 0
    assert bg[0, :, 0, 0].abs().sum() == 0 and bg[0, :, 7, 7].tolist() == [1.0, 1.0, 1.0]
    assert ((fg >= 0) & (fg <= corner)).all()


def test_no_selection_gives_zero_losses_with_graph():
    refiner = make_refiner()
    images, sim_maps, protos, labels, scores = random_inputs(seed=6)
    losses = refiner(images, sim_maps, protos, torch.zeros_like(labels), scores)
    assert losses['loss_fg'].item() == 0 and losses['loss_bg'].item() == 0
    assert losses['loss_act'].item() == pytest.approx(0.1 * 0.0005 * sim_maps.mean().item())
    sum(losses.values()).backward()
    assert sim_maps.grad is not None


def test_reduced_cutout_size():
    refiner = make_refiner(cutout_size=8)
    images, sim_maps, protos, labels, scores = random_inputs(size=16, seed=7)
    fg, bg, _ = refiner.cutouts(images, sim_maps, torch.tensor([0, 1]), torch.tensor([0, 5]))
    assert fg.shape == bg.shape == (2, 3, 8, 8)
    losses = refiner(images, sim_maps, protos, labels, scores)
    assert all(torch.isfinite(v) for v in losses.values())


def test_with_frozen_image_encoder():
    from helpers import CPU_PRESET_ENCODER
    refiner = MaskRefinerLoss(C, encoder=CPU_PRESET_ENCODER, chunk_size=4, checkpoint_encoder=True)
    images, sim_maps, protos, labels, scores = random_inputs(size=32, dim=512, seed=8)
    losses = refiner(images, sim_maps, protos, labels, scores)
    sum(losses.values()).backward()
    assert torch.isfinite(sim_maps.grad).all() and sim_maps.grad.abs().sum() > 0
    assert all(p.grad is None for p in refiner.encoder.parameters())


@pytest.mark.parametrize('form', ['public', 'soft_normalized'])
def test_empty_cutouts_are_left_out(form):
    refiner = make_refiner(activation_weight=0.0, cutout_form=form)
    images, _, protos, _, _ = random_inputs(b=1, k=2, seed=9)
    labels = torch.tensor([[1., 1., 0., 0.]])
    scores = torch.tensor([[1., 0., 1., 0., 0., 0., 0., 0.]])  # prototypes 0 (TUM), 2 (STR)
    sim_maps = torch.zeros(1, 8, 4, 4)
    sim_maps[0, 0, :2] = 2.0  # TUM map covers the top half: both cut-outs are non-empty
    sim_maps[0, 2] = -1.0  # STR map below half the image max everywhere: empty foreground
    sim_maps.requires_grad_(True)
    both = refiner(images, sim_maps, protos, labels, scores)
    only_tum = refiner(images, sim_maps, protos, labels, scores * torch.tensor([1.] * 2 + [0.] * 6))
    assert both['loss_fg'].item() == pytest.approx(only_tum['loss_fg'].item())
    assert both['loss_bg'].item() != pytest.approx(only_tum['loss_bg'].item())


def test_blank_cutouts_embedded_when_asked():
    images, _, protos, _, _ = random_inputs(b=1, k=2, seed=9)
    labels = torch.tensor([[1., 1., 0., 0.]])
    scores = torch.tensor([[1., 0., 1., 0., 0., 0., 0., 0.]])  # prototypes 0 (TUM), 2 (STR)
    sim_maps = torch.zeros(1, 8, 4, 4)
    sim_maps[0, 0, :2] = 2.0  # TUM: both cut-outs non-empty
    sim_maps[0, 2] = -1.0  # STR: empty hard mask, a blank foreground cut-out
    sizes = {}
    for blank in ('skip', 'embed'):
        refiner = make_refiner(blank_cutouts=blank)
        seen = []
        hook = refiner.encoder.register_forward_hook(lambda m, i, o: seen.append(i[0]))
        refiner(images, sim_maps, protos, labels, scores)
        hook.remove()
        sizes[blank] = sum(len(x) for x in seen)
        if blank == 'embed':  # foreground TUM, foreground STR (all zero), then 2 backgrounds
            assert seen[0][1].abs().sum() == 0 and seen[0][0].abs().sum() > 0
    assert sizes == {'skip': 3, 'embed': 4}

"""PBIP's mask refiner loss as used by LPD, vectorised over prototypes (docs/methods.md,
"Mask refiner")."""
from functools import partial
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch.utils.checkpoint import checkpoint

from lpd_bench.models import encoder_resize  # module attribute: one shared resize (PBIP bank too)

#: ``encoder_autocast`` values -> autocast dtype (None: no autocast).
AUTOCAST_DTYPES = {None: None, 'bfloat16': torch.bfloat16, 'float16': torch.float16}
#: ``cutout_form`` values: the public code's cut-outs, and our earlier normalised soft weighting.
CUTOUT_FORMS = ('public', 'soft_normalized')
#: ``selection`` values: the public rule, and our earlier rule that selects all when k = 1.
SELECTIONS = ('public', 'all_if_single')
#: ``blank_cutouts`` values: leave all-zero cut-outs out of their loss, or embed them too.
BLANK_CUTOUTS = ('skip', 'embed')


def select_prototypes(proto_scores: torch.Tensor, img_labels: torch.Tensor,
                      num_classes: int, selection: str = 'public') -> torch.Tensor:
    """(B, C*k) bool: prototype is selected for the image.

    ``selection='public'`` (the public code): selected = its class is in the image label and its
    score is strictly above the mean score of its class's k prototypes in that image. With k = 1
    nothing is ever selected (a single score is never above its own mean), so a k = 1 model has no
    mask refiner (only its activation term).
    ``selection='all_if_single'`` (our earlier rule): the same for k > 1, but with k = 1 every
    prototype of a present class is selected.
    """
    if selection not in SELECTIONS:
        raise ValueError(f'select_prototypes: selection must be one of {SELECTIONS}, '
                         f'got {selection!r}')
    b, n = proto_scores.shape
    k = n // num_classes
    present = (img_labels > 0.5)[:, :, None]
    if k == 1 and selection == 'all_if_single':
        return present.reshape(b, n)
    scores = proto_scores.detach().reshape(b, num_classes, k)
    return (present & (scores > scores.mean(-1, keepdim=True))).reshape(b, n)


def upsample_maps(maps: torch.Tensor, size) -> torch.Tensor:
    """(N, C, h, w) prototype maps -> (N, C, H, W), bilinear with ``align_corners=True``
    (the public code's upsampling of every map)."""
    return F.interpolate(maps, size=size, mode='bilinear', align_corners=True)


def multi_positive_info_nce(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -log(sum_{j positive} exp(l_j) / sum_j exp(l_j)) (MIL-NCE form)."""
    log_prob = torch.log_softmax(logits, dim=1)
    return -torch.logsumexp(log_prob.masked_fill(~positives, float('-inf')), dim=1).mean()


@MODELS.register_module()
class MaskRefinerLoss(nn.Module):
    """Foreground/background cut-out contrastive loss through a frozen image encoder.

    Pairs: every selected (image b, prototype p) (:func:`select_prototypes`, rule ``selection``).
    Cut-outs are made at the encoder's size S = ``cutout_size`` (None: the input size); the image x
    is the normalised input brought to S by :func:`~lpd_bench.models.encoder_resize.
    resize_for_encoder` (the function PBIP's stage A uses too). Two forms (``cutout_form``):

    - ``'public'`` (the public code, docs/methods.md): the pair's stage-4 map is upsampled to S
      (bilinear, ``align_corners=True``) and used RAW as the weight, w = m (scaled-cosine logits:
      no ReLU, no division by a maximum; it carries the gradient). The hard mask (no gradient) is
      h = [m >= 0.5 * M_b], M_b the image's maximum over ALL its C*k prototype maps upsampled
      to S the same way (for the CPU preset's S = 16: the 16 px maps).
    - ``'soft_normalized'`` (our earlier form): the map is upsampled with ``align_corners=False``
      and weighted w = ReLU(m) / max(M_b, 1e-6) in [0, 1], M_b the image's maximum over its
      stage-4 maps at stage-4 resolution (the gradient flows through M_b too); the hard mask is
      h = [m > 0.5 * M_b].

    Foreground cut-out w * x * h, background cut-out (1 - w) * x * (1 - h). All cut-outs (2 per
    pair) are embedded by the frozen encoder in one batch (or in chunks of ``chunk_size``), and,
    with raw prototypes P and cosine logits / temperature:

    - loss_fg = loss_weight * mean over pairs of cross-entropy(logits_fg, own prototype)
      (InfoNCE: positive = own P row, negatives = the other C*k - 1 rows);
    - loss_bg = loss_weight * mean over pairs of -log(sum_{j != own} softmax(logits_bg)_j)
      (multi-positive InfoNCE: pulled to the other prototypes, pushed from its own);
    - loss_act = loss_weight * activation_weight * mean of all raw stage-4 map values
      (B x C*k x h x w elements).

    Blank cut-outs (``blank_cutouts``). In both forms a pair whose hard mask is empty has an
    exactly all-zero foreground cut-out, whatever its map (h = 0 everywhere), and a pair whose
    hard mask covers the whole cut-out has an all-zero background cut-out. With the public form
    an empty mask happens for every prototype whose upsampled map stays below half the image's
    maximum over all classes' maps, and for all pairs of an image whose maps are all negative
    (M_b < 0: no value reaches 0.5 * M_b > M_b). A blank cut-out carries no information about
    its map (zero gradient into it), is the same image for every such pair, and an all-zero input
    gives LayerNorm encoders with zero biases NaN/inf input gradients. ``'skip'`` (default)
    leaves it out of its loss (the means run over the remaining pairs; every pair keeps at least
    one of its two cut-outs); ``'embed'`` embeds it like any other, as the public code does (its
    loss then only moves the prototypes, towards/away from the encoder's embedding of a blank
    image). A term with no cut-out left (or no selected pair at all) is a zero connected to the
    inputs' graph.

    Args:
        num_classes: C.
        encoder: config of the frozen encoder (e.g. ``FrozenImageEncoder``), (N, 3, H, W) -> (N, D).
        loss_weight: weight of the refiner (0.1 in the paper).
        temperature: InfoNCE temperature.
        activation_weight: weight of the mean-activation term inside the refiner loss.
        cutout_form: 'public' (default) or 'soft_normalized' (see above).
        selection: 'public' (default; k = 1 selects nothing) or 'all_if_single'
            (:func:`select_prototypes`).
        blank_cutouts: 'skip' (default) or 'embed' (see above).
        chunk_size: embed at most this many cut-outs per encoder call (None: one call). Lowers
            peak memory only together with ``checkpoint_encoder`` (otherwise every chunk's
            activations are kept for backward anyway).
        checkpoint_encoder: activation checkpointing of each encoder call (recomputed in backward).
        cutout_size: optional (H, W) or int, the encoder's input size S: cut-outs are made at this
            resolution instead of the input size. Cheaper, not the paper setting. Off.
        encoder_autocast: None (default: the encoder runs in the inputs' dtype) or 'bfloat16' /
            'float16': every frozen-encoder call runs under ``torch.autocast(device_type of the
            images, dtype)`` and its embeddings are cast back to float32 before the losses.
            Gradients still flow to the cut-outs (hence to the maps). bf16 needs AVX512-BF16/AMX on
            CPU to be faster; fp16 is for CUDA.
        memory_saving_devices: device types ('cpu', 'cuda', ...) on which ``chunk_size`` and
            ``checkpoint_encoder`` apply; None (default): every device. On other devices the
            cut-outs go through the encoder in one call without checkpointing. The paper config
            keeps them for CPU only (on a GPU small chunks leave it idle behind Python and
            recompute).
        memory_saving_above: the memory levers apply only to batches of more than this many
            cut-outs (None, default: to every batch). Small batches fit without them and skip
            their cost (the paper config: 64, so batch 2 runs plain and batch 10 chunked).
    """

    def __init__(self, num_classes: int, encoder: dict, loss_weight: float = 0.1,
                 temperature: float = 0.07, activation_weight: float = 0.0005,
                 cutout_form: str = 'public', selection: str = 'public',
                 blank_cutouts: str = 'skip',
                 chunk_size: Optional[int] = None, checkpoint_encoder: bool = False,
                 cutout_size: Union[None, int, Sequence[int]] = None,
                 encoder_autocast: Optional[str] = None,
                 memory_saving_devices: Optional[Sequence[str]] = None,
                 memory_saving_above: Optional[int] = None):
        super().__init__()
        for name, value, allowed in (('cutout_form', cutout_form, CUTOUT_FORMS),
                                     ('selection', selection, SELECTIONS),
                                     ('blank_cutouts', blank_cutouts, BLANK_CUTOUTS)):
            if value not in allowed:
                raise ValueError(f'MaskRefinerLoss: {name} must be one of {allowed}, '
                                 f'got {value!r}')
        if encoder_autocast not in AUTOCAST_DTYPES:
            raise ValueError(f'MaskRefinerLoss: encoder_autocast must be one of '
                             f'{sorted(AUTOCAST_DTYPES, key=str)}, got {encoder_autocast!r}')
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f'MaskRefinerLoss: chunk_size must be None or >= 1, got {chunk_size}')
        if temperature <= 0:
            raise ValueError(f'MaskRefinerLoss: temperature must be > 0, got {temperature}')
        self.num_classes = num_classes
        self.encoder = MODELS.build(encoder)
        self.encoder.requires_grad_(False)
        self.loss_weight = loss_weight
        self.temperature = temperature
        self.activation_weight = activation_weight
        self.cutout_form = cutout_form
        self.selection = selection
        self.blank_cutouts = blank_cutouts
        self.chunk_size = chunk_size
        self.checkpoint_encoder = checkpoint_encoder
        self.encoder_autocast = encoder_autocast
        self.memory_saving_devices = (None if memory_saving_devices is None else
                                      tuple(memory_saving_devices))
        if memory_saving_above is not None and memory_saving_above < 0:
            raise ValueError(f'MaskRefinerLoss: memory_saving_above must be None or >= 0, '
                             f'got {memory_saving_above}')
        self.memory_saving_above = memory_saving_above
        self.cutout_size = encoder_resize.encoder_size(cutout_size)

    def extra_repr(self) -> str:
        return (f'cutout_form={self.cutout_form!r}, selection={self.selection!r}, '
                f'blank_cutouts={self.blank_cutouts!r}, cutout_size={self.cutout_size}')

    def _check_shapes(self, images, sim_maps, prototypes, img_labels, proto_scores):
        b, n = sim_maps.shape[:2]
        problems = []
        if images.dim() != 4 or images.shape[0] != b:
            problems.append(f'images must be (B={b}, 3, H, W), got {tuple(images.shape)}')
        if n % self.num_classes or prototypes.dim() != 2 or prototypes.shape[0] != n:
            problems.append(f'prototypes must be (C*k={n}, D) with C={self.num_classes}, '
                            f'got {tuple(prototypes.shape)}')
        if tuple(img_labels.shape) != (b, self.num_classes):
            problems.append(f'img_labels must be {(b, self.num_classes)}, '
                            f'got {tuple(img_labels.shape)}')
        if tuple(proto_scores.shape) != (b, n):
            problems.append(f'proto_scores must be {(b, n)}, got {tuple(proto_scores.shape)}')
        if problems:
            raise ValueError('MaskRefinerLoss: ' + '; '.join(problems))

    def cutout_images(self, images: torch.Tensor, size) -> torch.Tensor:
        """The images x (B, 3, S, S') the masks multiply: the normalised inputs brought to the
        cut-out size by :func:`~lpd_bench.models.encoder_resize.resize_for_encoder`.
        Extension point for another form of the cut-out images."""
        return encoder_resize.resize_for_encoder(images, size)

    def soft_hard_masks(self, images: torch.Tensor, sim_maps: torch.Tensor, b_idx: torch.Tensor,
                        p_idx: torch.Tensor) -> tuple:
        """(images at the cut-out size (B, 3, S, S') (:meth:`cutout_images`), weights w
        (M, 1, S, S') with gradient, hard masks h (M, 1, S, S') float 0/1 without) of the pairs
        (b_idx[i], p_idx[i]), in the ``cutout_form`` (see the class docstring)."""
        size = self.cutout_size or tuple(images.shape[-2:])
        images = self.cutout_images(images, size)
        if self.cutout_form == 'public':
            with torch.no_grad():
                upsampled = upsample_maps(sim_maps.detach(), size)  # (B, C*k, S, S')
                threshold = 0.5 * upsampled.flatten(1).amax(1)  # (B,): 0.5 * M_b
                hard = upsampled[b_idx, p_idx][:, None] >= threshold[b_idx, None, None, None]
            weights = upsample_maps(sim_maps[b_idx, p_idx][:, None], size)
            return images, weights, hard.to(weights.dtype)
        image_max = sim_maps.flatten(1).amax(1)[b_idx][:, None, None, None]
        maps = F.interpolate(sim_maps[b_idx, p_idx][:, None], size=size, mode='bilinear',
                             align_corners=False)
        soft = maps.relu() / image_max.clamp(min=1e-6)
        hard = (maps.detach() > 0.5 * image_max.detach()).to(maps.dtype)
        return images, soft, hard

    def cutouts(self, images: torch.Tensor, sim_maps: torch.Tensor, b_idx: torch.Tensor,
                p_idx: torch.Tensor) -> tuple:
        """Foreground w * x * h and background (1 - w) * x * (1 - h) cut-outs (M, 3, S, S') of the
        pairs (b_idx[i], p_idx[i]), and the fraction of each cut-out's pixels inside the hard
        mask (M,)."""
        images, weights, hard = self.soft_hard_masks(images, sim_maps, b_idx, p_idx)
        x = images[b_idx]
        return weights * x * hard, (1 - weights) * x * (1 - hard), hard.flatten(1).mean(1)

    def encoder_batch(self, images: torch.Tensor, sim_maps: torch.Tensor, b_idx: torch.Tensor,
                      p_idx: torch.Tensor) -> tuple:
        """The cut-outs that are embedded, in one tensor: (foreground cut-outs of the pairs
        ``fg_ok``, then background cut-outs of the pairs ``bg_ok``), fg_ok, bg_ok.

        ``blank_cutouts='skip'``: fg_ok = hard mask not empty, bg_ok = hard mask not full;
        ``'embed'``: every pair in both. Same values as :meth:`cutouts`, built with one 3-channel
        product (the masks are combined and gathered at one channel first; images carry no
        gradient).
        """
        images, weights, hard = self.soft_hard_masks(images, sim_maps, b_idx, p_idx)
        if self.blank_cutouts == 'skip':
            covered = hard.flatten(1).mean(1)
            fg_ok, bg_ok = covered > 0, covered < 1  # every pair has at least one of the two
        else:
            fg_ok = bg_ok = torch.ones_like(b_idx, dtype=torch.bool)
        fg_idx, bg_idx = fg_ok.nonzero()[:, 0], bg_ok.nonzero()[:, 0]
        masks = torch.cat([weights[fg_idx] * hard[fg_idx],
                           (1 - weights[bg_idx]) * (1 - hard[bg_idx])])
        return masks * images[torch.cat([b_idx[fg_idx], b_idx[bg_idx]])], fg_ok, bg_ok

    def encode(self, cutouts: torch.Tensor) -> torch.Tensor:
        """One encoder call, under autocast if ``encoder_autocast`` is set (float32 output then)."""
        dtype = AUTOCAST_DTYPES[self.encoder_autocast]
        if dtype is None:
            return self.encoder(cutouts)
        with torch.autocast(device_type=cutouts.device.type, dtype=dtype):
            return self.encoder(cutouts).float()

    def embed(self, cutouts: torch.Tensor) -> torch.Tensor:
        """Frozen-encoder embeddings (N, D) of (N, 3, H, W) cut-outs, chunked/checkpointed (on
        the ``memory_saving_devices``, for more than ``memory_saving_above`` cut-outs)."""
        saving = ((self.memory_saving_devices is None
                   or cutouts.device.type in self.memory_saving_devices)
                  and (self.memory_saving_above is None
                       or cutouts.shape[0] > self.memory_saving_above))
        run = self.encode
        if saving and self.checkpoint_encoder and torch.is_grad_enabled():
            run = partial(checkpoint, self.encode, use_reentrant=False)
        chunks = cutouts.split(self.chunk_size) if saving and self.chunk_size else (cutouts,)
        return torch.cat([run(chunk) for chunk in chunks])

    def cosine_logits(self, embeddings: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        """(N, C*k) cosine similarities of embeddings (N, D) and prototypes (C*k, D), divided by
        the temperature."""
        return (F.normalize(embeddings, dim=1) @ F.normalize(prototypes, dim=1).t()
                / self.temperature)

    def foreground_loss(self, embeddings: torch.Tensor, prototypes: torch.Tensor,
                        own: torch.Tensor) -> torch.Tensor:
        """Unweighted InfoNCE of foreground embeddings (N, D) whose own prototype rows are
        ``own`` (N,): mean over cut-outs of the cross-entropy of :meth:`cosine_logits` with the
        own row. Extension point (with :meth:`background_loss`) for another contrastive form."""
        return F.cross_entropy(self.cosine_logits(embeddings, prototypes), own)

    def background_loss(self, embeddings: torch.Tensor, prototypes: torch.Tensor,
                        own: torch.Tensor) -> torch.Tensor:
        """Unweighted multi-positive InfoNCE of background embeddings (N, D): positives = every
        row but the own one (:func:`multi_positive_info_nce` of :meth:`cosine_logits`)."""
        own_rows = F.one_hot(own, prototypes.shape[0]).bool()
        return multi_positive_info_nce(self.cosine_logits(embeddings, prototypes), ~own_rows)

    def forward(self, images: torch.Tensor, sim_maps: torch.Tensor, prototypes: torch.Tensor,
                img_labels: torch.Tensor, proto_scores: torch.Tensor) -> dict:
        """Returns dict(loss_fg, loss_bg, loss_act), each already weighted."""
        self._check_shapes(images, sim_maps, prototypes, img_labels, proto_scores)
        loss_act = self.loss_weight * self.activation_weight * sim_maps.mean()
        selected = select_prototypes(proto_scores, img_labels, self.num_classes, self.selection)
        b_idx, p_idx = selected.nonzero(as_tuple=True)
        zero = sim_maps.sum() * 0.0 + prototypes.sum() * 0.0
        if b_idx.numel() == 0:
            return dict(loss_fg=zero, loss_bg=zero.clone(), loss_act=loss_act)

        batch, fg_ok, bg_ok = self.encoder_batch(images, sim_maps, b_idx, p_idx)
        emb_fg, emb_bg = self.embed(batch).split([int(fg_ok.sum()), int(bg_ok.sum())])
        losses = dict(loss_fg=zero, loss_bg=zero.clone(), loss_act=loss_act)
        if emb_fg.numel():
            losses['loss_fg'] = self.loss_weight * self.foreground_loss(emb_fg, prototypes,
                                                                        p_idx[fg_ok])
        if emb_bg.numel():
            losses['loss_bg'] = self.loss_weight * self.background_loss(emb_bg, prototypes,
                                                                        p_idx[bg_ok])
        return losses

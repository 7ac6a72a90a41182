"""The public PBIP mask refiner: min-max scaled cut-out images and one InfoNCE ratio per batch.

With e_n the normalised foreground embedding of selected cut-out n, g_n its normalised background
embedding, p_own its own bank row and p_l the other C*k - 1 rows (raw: not normalised), t the
temperature:

- ``L_fg = -log( sum_n e^{a_n/t} / sum_n [ e^{a_n/t} + sum_l e^{b_nl/t} ] )``,
  ``a_n = <e_n, p_own>``, ``b_nl = <e_n, p_l>``;
- ``L_bg = -log( sum_n mean_l e^{c_nl/t} / sum_n [ mean_l e^{c_nl/t} + e^{d_n/t} ] )``,
  ``c_nl = <g_n, p_l>``, ``d_n = <g_n, p_own>``.

Both are one ratio over the whole batch, not a mean of per-cut-out losses (LPD's form, in
:class:`~lpd_bench.models.losses.mask_refiner.MaskRefinerLoss`). They are computed in log space
(log-sum-exp), which is the same value without overflow.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lpd_bench.models.losses.mask_refiner import MaskRefinerLoss
from mmseg.registry import MODELS

#: The public code's epsilon of the cut-out images' min-max.
MINMAX_EPS = 1e-8


def minmax_per_image_channel(images: Tensor, eps: float = MINMAX_EPS) -> Tensor:
    """(B, 3, H, W) -> same, each image's channel scaled to [0, 1] over H, W:
    ``(v - min) / (max - min + eps)``."""
    low = images.amin(dim=(2, 3), keepdim=True)
    high = images.amax(dim=(2, 3), keepdim=True)
    return (images - low) / (high - low + eps)


def _own_and_others(logits: Tensor, own: Tensor) -> tuple:
    """(own logits (N,), the other rows' logits (N, R-1)) of (N, R) logits."""
    own_rows = F.one_hot(own, logits.shape[1]).bool()
    return logits[own_rows], logits[~own_rows].view(logits.shape[0], -1)


def batch_info_nce_foreground(logits: Tensor, own: Tensor) -> Tensor:
    """``L_fg`` (module docstring) of logits (N, C*k) = similarities / t and own rows (N,)."""
    positive, _ = _own_and_others(logits, own)
    return torch.logsumexp(logits.flatten(), dim=0) - torch.logsumexp(positive, dim=0)


def batch_info_nce_background(logits: Tensor, own: Tensor) -> Tensor:
    """``L_bg`` (module docstring) of logits (N, C*k) = similarities / t and own rows (N,)."""
    own_logits, others = _own_and_others(logits, own)
    mean_others = torch.logsumexp(others, dim=1) - math.log(others.shape[1])  # log mean_l e^c
    return (torch.logsumexp(torch.cat([mean_others, own_logits]), dim=0)
            - torch.logsumexp(mean_others, dim=0))


@MODELS.register_module()
class PBIPPublicRefinerLoss(MaskRefinerLoss):
    """:class:`~lpd_bench.models.losses.mask_refiner.MaskRefinerLoss` in the public PBIP form.

    - Cut-out images: the normalised inputs brought to the cut-out size (as LPD's), then min-max
      scaled per image and channel (:func:`minmax_per_image_channel`) before the masks multiply
      them.
    - Contrastive terms: one ratio over the batch (:func:`batch_info_nce_foreground`,
      :func:`batch_info_nce_background`), logits ``<e/|e|, p> / temperature`` with the raw bank
      rows p (not normalised).

    Everything else (selection, masks, blank cut-outs, encoder, memory levers, the weighting
    ``loss_weight * (L_fg + L_bg + activation_weight * mean(stage-4 maps))``) is the parent's;
    same arguments.
    """

    def cutout_images(self, images: Tensor, size) -> Tensor:
        """The parent's images at the cut-out size, min-max scaled per image and channel."""
        return minmax_per_image_channel(super().cutout_images(images, size))

    def raw_prototype_logits(self, embeddings: Tensor, prototypes: Tensor) -> Tensor:
        """(N, C*k) ``<e/|e|, p> / temperature`` of embeddings (N, D) and raw rows (C*k, D)."""
        return F.normalize(embeddings, dim=1) @ prototypes.t() / self.temperature

    def foreground_loss(self, embeddings: Tensor, prototypes: Tensor, own: Tensor) -> Tensor:
        return batch_info_nce_foreground(self.raw_prototype_logits(embeddings, prototypes), own)

    def background_loss(self, embeddings: Tensor, prototypes: Tensor, own: Tensor) -> Tensor:
        return batch_info_nce_background(self.raw_prototype_logits(embeddings, prototypes), own)

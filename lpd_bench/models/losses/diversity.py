"""LPD's prototype diversity regulariser, corrected and public-code forms (docs/methods.md,
"Diversity loss")."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

VARIANTS = ('corrected', 'public')


def pseudo_label_map(sim_maps: torch.Tensor, num_classes: int, bg_score: float,
                     variant: str = 'corrected') -> torch.Tensor:
    """Per-pixel pseudo-label from similarity maps (B, C*k, H, W) -> (B, H, W) int64.

    The C class-mean maps and a constant background channel ``bg_score`` compete in an argmax.
    ``'corrected'``: channels [c0..c_{C-1}, bg], so tissue class c is value c and background C.
    ``'public'``: channels [bg, c0..c_{C-1}] as in the public code, so class c is value c + 1
    and background 0 (the loss then reads value c for class c: the off-by-one defect).
    """
    b, n, h, w = sim_maps.shape
    class_maps = sim_maps.detach().reshape(b, num_classes, n // num_classes, h, w).mean(2)
    bg = class_maps.new_full((b, 1, h, w), bg_score)
    channels = [class_maps, bg] if variant == 'corrected' else [bg, class_maps]
    return torch.cat(channels, dim=1).argmax(dim=1)


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log_softmax over the last dim restricted to ``mask``; 0 (not -inf) outside the mask."""
    log_p = torch.log_softmax(logits.masked_fill(~mask, float('-inf')), dim=-1)
    return log_p.masked_fill(~mask, 0.0)


@MODELS.register_module()
class PrototypeDiversityLoss(nn.Module):
    """exp(-Jeffrey's divergence) between the spatial distributions of one class's prototypes.

    Inputs: stage-4 pixel features f (B, D, H, W), the prototypes p the head compares them with
    (C*k, D; which ones, raw or projected, is the head's ``diversity_prototypes``), the stage-4
    similarity maps (for the pseudo-label only) and the image labels.

    For image b and class c the region R_bc is the set of pixels the pseudo-label map
    (:func:`pseudo_label_map`) gives to c. Each prototype u of c defines a distribution over R_bc,
    U = softmax_{x in R_bc}(cos(f_x, p_u) / temperature). For every ordered pair u != w of c's
    prototypes the penalty is exp(-(KL(U||W) + KL(W||U))), averaged over the pairs: P_bc. With
    k = 1 there are no pairs. When nothing contributes the loss is a zero that is still connected
    to ``feats`` and ``protos`` (so backward works).

    ``variant='corrected'`` (default, docs/methods.md): pseudo-label value c is class c (the
    background is C); a (b, c) pair contributes when c is in the image label and R_bc has at
    least 2 pixels (with 0 pixels there is no distribution, with 1 every prototype gives the same
    point mass: constant penalty, no gradient); loss = mean over images with a contributing class
    of the mean of P_bc over its contributing classes. The distribution has ONE softmax, of the
    cosine divided by ``temperature``. The temperature is ours: the public code has none (it
    applies softmax twice, see below); 0.1 in the configs is our choice, not a published value.

    ``variant='public'`` reproduces the authors' code, pixel selection and reduction included:

    - the region of class c is pseudo-label value c in a map where 0 is background (the
      off-by-one defect: TUM reads background pixels, STR reads TUM, ..., NEC pixels are never
      used);
    - a (b, c) pair contributes whenever R_bc is not empty (one pixel is enough), whatever the
      image label says;
    - loss = (sum of P_bc over the contributing pairs) / B, B the batch size (classes are summed,
      not averaged, and the division is by B, not by the number of images that contribute);
    - the distribution is the softmax of the already softmaxed cosines (both over the region, no
      temperature: ``temperature`` is ignored), which is nearly uniform, so each P_bc is ~1 with
      almost no gradient.

    Args:
        num_classes: C, tissue classes.
        variant: 'corrected' (default) or 'public'.
        temperature: divides the cosine before the softmax (corrected form only; ours).
        bg_score: constant background score of the pseudo-label argmax.
        loss_weight: the returned loss is already multiplied by it (lambda_div).
    """

    def __init__(self, num_classes: int, variant: str = 'corrected', temperature: float = 0.1,
                 bg_score: float = 0.2, loss_weight: float = 0.5):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f'PrototypeDiversityLoss: variant must be one of {VARIANTS}, '
                             f'got {variant!r}')
        if temperature <= 0:
            raise ValueError(f'PrototypeDiversityLoss: temperature must be > 0, got {temperature}')
        self.num_classes = num_classes
        self.variant = variant
        self.temperature = temperature
        self.bg_score = bg_score
        self.loss_weight = loss_weight

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, variant={self.variant!r}, '
                f'temperature={self.temperature}, bg_score={self.bg_score}, '
                f'loss_weight={self.loss_weight}')

    def _check_shapes(self, feats, protos, sim_maps, img_labels) -> int:
        b, d, h, w = feats.shape
        n = protos.shape[0]
        if n % self.num_classes or protos.shape[1] != d:
            raise ValueError(f'PrototypeDiversityLoss: protos must be (C*k, D) with C='
                             f'{self.num_classes}, D={d}; got {tuple(protos.shape)}')
        if tuple(sim_maps.shape) != (b, n, h, w):
            raise ValueError(f'PrototypeDiversityLoss: sim_maps must be {(b, n, h, w)} '
                             f'(B, C*k, H, W of feats), got {tuple(sim_maps.shape)}')
        if tuple(img_labels.shape) != (b, self.num_classes):
            raise ValueError(f'PrototypeDiversityLoss: img_labels must be {(b, self.num_classes)}, '
                             f'got {tuple(img_labels.shape)}')
        return n // self.num_classes

    def forward(self, feats: torch.Tensor, protos: torch.Tensor, sim_maps: torch.Tensor,
                img_labels: torch.Tensor) -> torch.Tensor:
        """feats (B, D, H, W), protos (C*k, D), sim_maps (B, C*k, H, W), img_labels (B, C)."""
        k = self._check_shapes(feats, protos, sim_maps, img_labels)
        b, c = img_labels.shape
        zero = feats.sum() * 0.0 + protos.sum() * 0.0
        if k < 2:
            return zero

        labels = pseudo_label_map(sim_maps, c, self.bg_score, self.variant).flatten(1)  # (B, HW)
        # Region of class c: label value c in both forms (the public off-by-one lives in the map).
        class_ids = torch.arange(c, device=labels.device)
        regions = labels[:, None, :] == class_ids[None, :, None]  # (B, C, HW)
        if self.variant == 'corrected':
            valid = (img_labels > 0) & (regions.sum(-1) >= 2)  # (B, C)
        else:
            valid = regions.any(-1)
        if not valid.any():
            return zero

        cos = torch.einsum('bdx,nd->bnx', F.normalize(feats.flatten(2), dim=1),
                           F.normalize(protos, dim=1))
        cos = cos.reshape(b, c, k, -1)  # (B, C, k, HW), class-major prototypes
        mask = regions[:, :, None, :].expand_as(cos)
        if self.variant == 'corrected':
            log_p = masked_log_softmax(cos / self.temperature, mask)
        else:
            log_p = masked_log_softmax(masked_log_softmax(cos, mask).exp(), mask)
        p = log_p.exp() * mask  # exactly 0 outside the region

        # J[u, w] = sum_x (U - W)(log U - log W) = H(u,u) + H(w,w) - H(u,w) - H(w,u), H = U @ logW^T
        cross = p @ log_p.transpose(-1, -2)  # (B, C, k, k)
        self_term = cross.diagonal(dim1=-2, dim2=-1)
        jeffreys = self_term[..., :, None] + self_term[..., None, :] - cross - cross.transpose(-1, -2)
        off_diag = ~torch.eye(k, dtype=torch.bool, device=cos.device)
        per_class = torch.exp(-jeffreys)[..., off_diag].mean(-1)  # (B, C)

        valid_f = valid.to(per_class.dtype)
        if self.variant == 'public':
            return self.loss_weight * (per_class * valid_f).sum() / b
        n_valid = valid_f.sum(1)
        per_image = (per_class * valid_f).sum(1) / n_valid.clamp(min=1)
        loss = per_image[n_valid > 0].mean()
        return self.loss_weight * loss

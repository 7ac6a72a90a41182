"""Prototype sources: where the class prototypes of a :class:`PrototypeHead` come from.

Every source subclasses :class:`PrototypeSource` and is registered in mmseg ``MODELS``. The head
builds it with ``MODELS.build(dict(cfg, num_classes=C, stage_channels=in_channels))``, so every
subclass accepts ``num_classes`` and ``stage_channels`` keyword arguments (it may ignore the
latter). The interface the head relies on:

- ``num_classes`` (C), ``num_per_class`` (k), ``num_prototypes`` (C*k): rows are class-major,
  rows ``c*k .. c*k+k-1`` belong to class ``c``.
- ``projected`` (bool, class attribute):
  - ``True``: ``forward()`` returns the raw matrix P of shape (C*k, ``dim``); the head maps it to
    every stage's width with its own per-stage MLP, and the mask refiner compares image
    embeddings with these raw rows (LPD's learnable prototypes, PBIP's clustered bank).
  - ``False``: ``stage_prototypes()`` returns one (C*k, d_i) matrix per stage, already in each
    stage's width; the head uses them as they are and has no raw matrix (CAM's class vectors,
    ``baselines/cam/``).

A frozen source (e.g. PBIP's ``ClusteredPrototypes`` in ``baselines/``) keeps its matrix in a
buffer rather than a parameter and returns it from ``forward()``.
"""
from typing import List, Optional, Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmseg.registry import MODELS


class PrototypeSource(BaseModule):
    """Base class of prototype sources (see the module docstring for the contract).

    Args:
        num_classes: number of foreground classes C.
        num_per_class: prototypes per class k.
        dim: width of the raw matrix of a projected source (None for unprojected sources).
        stage_channels: widths d_i of the backbone stages the head reads.
    """

    projected: bool = True

    def __init__(self,
                 num_classes: int,
                 num_per_class: int,
                 dim: Optional[int] = None,
                 stage_channels: Sequence[int] = (),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        for name, value in (('num_classes', num_classes), ('num_per_class', num_per_class)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{type(self).__name__}: {name} must be a positive int, '
                                 f'got {value!r}')
        self.num_classes = num_classes
        self.num_per_class = num_per_class
        self.dim = dim
        self.stage_channels = tuple(stage_channels)

    @property
    def num_prototypes(self) -> int:
        """C*k, the number of rows of every prototype matrix."""
        return self.num_classes * self.num_per_class

    def forward(self) -> Tensor:
        """Raw prototype matrix (C*k, dim) of a projected source."""
        raise NotImplementedError(f'{type(self).__name__} is not a projected prototype source')

    def stage_prototypes(self) -> List[Tensor]:
        """Per-stage prototype matrices [(C*k, d_i)] of an unprojected source."""
        raise NotImplementedError(f'{type(self).__name__} is projected: the head projects '
                                  'forward() with its own MLPs')


@MODELS.register_module()
class LearnablePrototypes(PrototypeSource):
    """LPD's prototypes: one learnable matrix P (C*k, dim), standard-normal init.

    Args:
        frozen: keep P at its initialisation (a control of the benchmark's power check, LPD's
            ``power`` check group): P stays a parameter (same state dict, checkpoints load
            either way) but with ``requires_grad=False``, so it gets no gradient and the
            optimiser (which skips parameters without a gradient, weight decay included)
            never changes it; the head's projection MLPs still learn.
    """

    def __init__(self, num_classes: int, num_per_class: int = 10, dim: int = 512,
                 frozen: bool = False, **kwargs):
        super().__init__(num_classes, num_per_class, dim, **kwargs)
        self.frozen = bool(frozen)
        self.prototypes = nn.Parameter(torch.randn(self.num_prototypes, dim),
                                       requires_grad=not self.frozen)

    def forward(self) -> Tensor:
        return self.prototypes

"""PatchMLPEncoder: a cheap image backbone of per-patch MLPs, the CPU preset's frozen encoder.

The mask refiner embeds two cut-outs per selected prototype per image at every step, and the
gradient flows back through the encoder into the cut-outs. On CPU a convolutional or transformer
encoder pays a high fixed cost for this input gradient (a narrow one-block-per-stage MiT on the
32 px cut-outs of a CPU-preset batch cost about as much as the whole CAM step), whereas matrix
products are cheap. So this backbone only rearranges pixels and multiplies:

- stage 1: non-overlapping ``patch_size`` x ``patch_size`` patches (as ``pixel_unshuffle``), a linear
  map of each patch's 3 * p^2 values to ``embed_dims[0]``, GELU;
- stage j > 1: 2 x 2 neighbouring tokens merged (the same rearrangement, as Swin's patch
  merging), a linear map to ``embed_dims[j]``, GELU.

It returns every stage's (N, C_j, H / (p 2^j), W / (p 2^j)) map, like mmseg backbones. Weights are
drawn once (Kaiming-normal weights, for GELU's ~ReLU gain; small normal biases so that a blank
cut-out still gives a non-zero feature); frozen with random weights it is a random-feature
encoder of colour and texture statistics, which is all a randomly initialised encoder of any
architecture offers. Inputs must be divisible by ``patch_size * 2^(stages - 1)``.
"""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS


@MODELS.register_module()
class PatchMLPEncoder(BaseModule):
    """Per-patch MLP backbone (see module docstring).

    Args:
        in_channels: input channels.
        patch_size: side of the non-overlapping stage-1 patches.
        embed_dims: width of each stage (its length is the number of stages).
        bias_std: standard deviation of the initial biases.
    """

    def __init__(self, in_channels: int = 3, patch_size: int = 4,
                 embed_dims: Sequence[int] = (64, 128), bias_std: float = 0.1, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if patch_size < 1 or not embed_dims:
            raise ValueError(f'PatchMLPEncoder: patch_size must be >= 1 and embed_dims non-empty, '
                             f'got {patch_size} and {tuple(embed_dims)}')
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.embed_dims = tuple(embed_dims)
        self.bias_std = bias_std
        fan_ins = [in_channels * patch_size**2] + [4 * d for d in self.embed_dims[:-1]]
        self.layers = nn.ModuleList(nn.Linear(f, d) for f, d in zip(fan_ins, self.embed_dims))

    def init_weights(self):
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity='relu')
            nn.init.normal_(layer.bias, std=self.bias_std)

    def forward(self, x: torch.Tensor) -> tuple:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'PatchMLPEncoder: expected (N, {self.in_channels}, H, W), '
                             f'got {tuple(x.shape)}')
        multiple = self.patch_size * 2**(len(self.layers) - 1)
        if x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise ValueError(f'PatchMLPEncoder: input size {tuple(x.shape[-2:])} must be divisible '
                             f'by patch_size * 2^(stages - 1) = {multiple}')
        x = x.permute(0, 2, 3, 1)  # channels-last: each layer is one (tokens, fan_in) product
        outs = []
        for j, layer in enumerate(self.layers):
            x = F.gelu(layer(space_to_channels(x, self.patch_size if j == 0 else 2)))
            outs.append(x.permute(0, 3, 1, 2))
        return tuple(outs)


def space_to_channels(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, H, W, C) -> (N, H/size, W/size, C*size*size): non-overlapping size x size blocks as
    channels, ordered (C, dy, dx) like ``F.pixel_unshuffle`` (which works on channels-first)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // size, size, w // size, size, c).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, h // size, w // size, c * size * size)

"""How normalised images reach the frozen image encoder's input size.

One function, :func:`resize_for_encoder`, used by both consumers of the frozen encoder, so they see
images at the encoder's size in exactly the same way:

- the mask refiner (``MaskRefinerLoss``), whose cut-outs are made at ``cutout_size``
  (None: the input size);
- PBIP stage A (``baselines/pbip/prototype_bank.embed_dataset``), which embeds whole training
  images at the same ``cutout_size`` of the config's refiner.

The resize is bilinear with ``align_corners=False`` (pixel areas map onto pixel areas, the usual
convention for resizing an image, unlike the ``align_corners=True`` used to upsample prototype
maps) and antialiased along a side that shrinks, so that a 7x reduction (112 px synthetic patches
to the CPU preset's 16 px cut-outs) averages the texture instead of aliasing it. A side that grows
is plain bilinear (antialiasing has no effect when upsampling). At the paper setting the input is
already the encoder's 224 x 224 and the images are returned unchanged.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

Size = Union[None, int, Sequence[int]]


def encoder_size(size: Size) -> Optional[Tuple[int, int]]:
    """``size`` as an (H, W) tuple of ints (an int means a square); None stays None."""
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f'encoder size must be an int or (H, W), got {size}')
    return size


def resize_for_encoder(images: torch.Tensor, size: Size) -> torch.Tensor:
    """(N, C, H, W) normalised images at the encoder's ``size`` (int or (H, W); None: as they are).

    Bilinear, ``align_corners=False``, antialiased when shrinking; returns ``images`` itself when
    the size already matches (no copy, no change).
    """
    size = encoder_size(size)
    if size is None or size == tuple(images.shape[-2:]):
        return images
    shrinking = size[0] < images.shape[-2] or size[1] < images.shape[-1]
    return F.interpolate(images, size=size, mode='bilinear', align_corners=False,
                         antialias=shrinking)

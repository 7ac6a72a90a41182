"""OriginalSwinTransformer: mmseg's SwinTransformer with the original Swin's single-window rule.

The original implementation (microsoft/Swin-Transformer), and ``timm`` and ``transformers`` after
it, do not shift the windows of a block whose feature map fits in one window
(``min(H, W) <= window_size``: shift 0). mmseg's ``SwinTransformer`` always shifts every second
block, masking the shifted regions. At the ImageNet input size, 224, the last stage's map is
7 x 7 = one window, so mmseg's second block of stage 4 attends within four masked regions where the
ImageNet Swin-T (as trained and as published on the model hub) attends over the whole map:
with the same weights the two give different features. This backbone follows the original rule
and is otherwise mmseg's (same modules, same state dict keys, so mmseg Swin checkpoints load
unchanged). ``type='SwinTransformer'`` keeps mmseg's behaviour.

Where a map is smaller than a window (e.g. 64 px inputs), mmseg zero-pads it to a window, as
before; ``transformers`` shrinks the window instead and cannot apply the 7 x 7 bias table there.
"""
import torch.nn.functional as F
from mmseg.models.backbones.swin import ShiftWindowMSA, SwinTransformer
from mmseg.registry import MODELS


class SingleWindowNoShiftMSA(ShiftWindowMSA):
    """mmseg's ``ShiftWindowMSA`` that does not shift when ``min(H, W) <= window_size``.

    Adds no parameters or buffers (the state dict is mmseg's); only ``forward`` differs.
    """

    def forward(self, query, hw_shape):
        if self.shift_size == 0 or min(hw_shape) > self.window_size:
            return super().forward(query, hw_shape)
        # mmseg's shift_size == 0 path: pad to whole windows, window attention, crop.
        batch, length, channels = query.shape
        height, width = hw_shape
        assert length == height * width, 'input feature has wrong size'
        query = query.view(batch, height, width, channels)
        pad_r = (self.window_size - width % self.window_size) % self.window_size
        pad_b = (self.window_size - height % self.window_size) % self.window_size
        query = F.pad(query, (0, 0, 0, pad_r, 0, pad_b))
        height_pad, width_pad = query.shape[1], query.shape[2]
        windows = self.window_partition(query).view(-1, self.window_size**2, channels)
        windows = self.w_msa(windows, mask=None).view(-1, self.window_size, self.window_size,
                                                      channels)
        x = self.window_reverse(windows, height_pad, width_pad)[:, :height, :width, :]
        return self.drop(x.contiguous().view(batch, height * width, channels))


@MODELS.register_module()
class OriginalSwinTransformer(SwinTransformer):
    """mmseg ``SwinTransformer`` (same arguments and keys) with the original single-window rule."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for stage in self.stages:
            for block in stage.blocks:
                # Same object, a subclass that only overrides forward: parameters stay in place.
                block.attn.__class__ = SingleWindowNoShiftMSA

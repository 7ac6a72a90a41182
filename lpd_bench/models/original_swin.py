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

Window attention through ``torch.nn.functional.scaled_dot_product_attention``
(:class:`SdpaWindowMSA`, switched on by :func:`set_window_attention`, e.g. by
``FrozenImageEncoder(attention='sdpa')``): the same function as mmseg's ``WindowMSA`` (the
relative-position bias, plus the shifted-window mask where there is one, is SDPA's additive
``attn_mask``), so that a fused attention kernel can run it on a GPU; the default is mmseg's
eager matmul-softmax-matmul.
"""
import torch
import torch.nn.functional as F
from mmseg.models.backbones.swin import ShiftWindowMSA, SwinTransformer, WindowMSA
from mmseg.registry import MODELS

#: Window attention implementations (:func:`set_window_attention`).
ATTENTION_MODES = ('eager', 'sdpa')


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


class SdpaWindowMSA(WindowMSA):
    """mmseg's ``WindowMSA`` (same parameters, buffers and function) through
    ``F.scaled_dot_product_attention``.

    softmax(q k^T * scale + B [+ M]) v with B the relative-position bias (heads, N, N) and M the
    shifted-window mask (windows, N, N) of ``ShiftWindowMSA``: B + M is SDPA's additive
    ``attn_mask``. With a mask the windows of an image are moved into SDPA's head dimension
    ((images, windows * heads, N, d), a copy of q, k and v), so that the (windows * heads, N, N)
    mask broadcasts over the images without being repeated for each of them. The mask is cast to
    the dtype of q (SDPA's rule; under autocast q is bf16/fp16 and autocast casts SDPA's inputs
    anyway). Attention dropout is applied in training mode only, as ``nn.Dropout`` would.
    """

    def forward(self, x, mask=None):
        batch, length, channels = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(batch, length, 3, heads, channels // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (batch, heads, N, d)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(
            length, length, heads).permute(2, 0, 1)  # (heads, N, N)
        if mask is None:
            attn_mask = bias.unsqueeze(0)
        else:
            windows = mask.shape[0]
            attn_mask = (bias.unsqueeze(0) + mask.unsqueeze(1).to(bias.dtype)).reshape(
                1, windows * heads, length, length)
            q, k, v = (t.reshape(batch // windows, windows * heads, length, -1)
                       for t in (q, k, v))
        dropout = self.attn_drop.p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=aligned_mask(attn_mask, q.dtype),
                                             dropout_p=dropout, scale=self.scale)
        out = out.reshape(batch, heads, length, -1).transpose(1, 2).reshape(batch, length, channels)
        return self.proj_drop(self.proj(out))


def aligned_mask(mask: torch.Tensor, dtype: torch.dtype, alignment: int = 16) -> torch.Tensor:
    """``mask`` (..., N, N) in ``dtype``, its rows ``alignment`` elements apart (a view into a
    zero-padded copy): the layout CUDA's memory-efficient attention takes as it is (it would pad
    an unaligned mask itself, at every call). Same values."""
    pad = -mask.shape[-1] % alignment
    mask = mask.to(dtype)
    return F.pad(mask, (0, pad))[..., :mask.shape[-1]] if pad else mask.contiguous()


_ATTENTION_CLASSES = {'eager': WindowMSA, 'sdpa': SdpaWindowMSA}


def set_window_attention(module: torch.nn.Module, mode: str) -> int:
    """Make every mmseg ``WindowMSA`` inside ``module`` compute with ``mode`` ('eager': mmseg's
    own forward; 'sdpa': :class:`SdpaWindowMSA`). The modules keep their parameters and buffers
    (only the class changes), so state dicts and checkpoints are unaffected. Returns how many
    attention modules were switched (0: ``module`` has no Swin window attention)."""
    if mode not in ATTENTION_MODES:
        raise ValueError(f'window attention must be one of {ATTENTION_MODES}, got {mode!r}')
    count = 0
    for child in module.modules():
        if type(child) in (WindowMSA, SdpaWindowMSA):
            child.__class__ = _ATTENTION_CLASSES[mode]
            count += 1
    return count


@MODELS.register_module()
class OriginalSwinTransformer(SwinTransformer):
    """mmseg ``SwinTransformer`` (same arguments and keys) with the original single-window rule."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for stage in self.stages:
            for block in stage.blocks:
                # Same object, a subclass that only overrides forward: parameters stay in place.
                block.attn.__class__ = SingleWindowNoShiftMSA

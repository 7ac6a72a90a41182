"""The second stage: pseudo-masks from a trained stage-1 model, then an ordinary fully supervised
MMSegmentation network trained on them and tested with no labels (docs/protocol.md, section 11).

Importing this package registers PseudoMaskDataset and the ``pseudo_mask_dir`` config alias;
the pseudo-mask step is ``python -m lpd_bench.stage2.pseudo_masks`` (or ``lpd-bench pseudo-masks
RUN_DIR``).
"""
from .pseudo_mask_dataset import PseudoMaskDataset

__all__ = ['PseudoMaskDataset']

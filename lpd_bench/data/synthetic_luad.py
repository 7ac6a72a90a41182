"""The LUAD-HistoSeg form of the synthetic stand-in (``write_synthetic_dataset(layout='luad')``).

The pixels are those of the BCSS-layout set of the same seed, version, knobs and sizes; what
changes is the class order, the palette and the names:

- each generated tissue type stands in for the closest LUAD-HistoSeg class (``STAND_IN``: tumour
  for TE, stroma for TAS, lymphocytes for LYM, necrosis for NEC), so masks and labels are
  relabelled into LUAD's order TE, NEC, LYM, TAS (``relabel``) and masks carry LUAD's palette;
- train ``<patient>-<x>-<y>-[a b c d].png``, val/test ``<patient>-<x>-<y>.png``: one patient per
  slide region, patch j of a region at column ``j % GRID_COLUMNS``, row ``j // GRID_COLUMNS`` of
  a grid of patch-size steps from the region's origin (``LuadNames``).

Its numbers are never LUAD-HistoSeg numbers.
"""
from typing import Dict, Sequence

import numpy as np

from . import bcss_meta, luad_meta
from .luad_filenames import format_luad_train_name

#: The LUAD-HistoSeg class each generated (BCSS-WSSS) class stands in for.
STAND_IN = {'TUM': 'TE', 'STR': 'TAS', 'LYM': 'LYM', 'NEC': 'NEC', 'BG': 'BG'}
#: LUAD mask value of every BCSS mask value (index).
FROM_BCSS = np.array([luad_meta.ALL_CLASSES.index(STAND_IN[c]) for c in bcss_meta.ALL_CLASSES],
                     np.uint8)
#: Patches per row of a slide region's grid.
GRID_COLUMNS = 8
#: Patient ids are 7-digit numbers (as ``1031280``); region origins multiples of this, in px.
PATIENT_RANGE = (1_000_000, 10_000_000)
ORIGIN_STEP = 20
ORIGIN_STEPS = 2000


def relabel(mask: np.ndarray) -> np.ndarray:
    """A generated (BCSS-order) mask in LUAD-HistoSeg's class order."""
    return FROM_BCSS[mask]


def legend(bcss_legend: Dict[str, dict]) -> Dict[str, dict]:
    """A sub-morphology legend with the LUAD class names (ids unchanged)."""
    return {k: dict(v, **{'class': STAND_IN[v['class']]}) for k, v in bcss_legend.items()}


class LuadNames:
    """File names of a split's patches; patch i comes from region ``i % n_regions`` (as the
    generator's slides) and is that region's patch ``i // n_regions``.

    Args:
        rng: numpy Generator of the split's names (drawn in the constructor only).
        n_regions: slide regions of the split; each gets a distinct patient id.
        size: patch size in pixels (the grid step).
    """

    def __init__(self, rng, n_regions: int, size: int):
        low, high = PATIENT_RANGE
        patients = rng.choice(high - low, n_regions, replace=False) + low
        origins = rng.integers(0, ORIGIN_STEPS, (n_regions, 2)) * ORIGIN_STEP
        self.regions = [(str(p), int(x), int(y)) for p, (x, y) in zip(patients, origins)]
        self.size = int(size)

    def region_names(self) -> list:
        """``<patient>-<x0>-<y0>`` of every region (for the manifest)."""
        return [f'{p}-{x}-{y}' for p, x, y in self.regions]

    def _where(self, i: int):
        patient, x0, y0 = self.regions[i % len(self.regions)]
        j = i // len(self.regions)
        return (patient, x0 + (j % GRID_COLUMNS) * self.size,
                y0 + (j // GRID_COLUMNS) * self.size)

    def train_name(self, i: int, label: Sequence[int]) -> str:
        """``<patient>-<x>-<y>-[a b c d].png`` of patch i (``label`` in LUAD order)."""
        return format_luad_train_name(*self._where(i), label)

    def heldout_name(self, i: int) -> str:
        """``<patient>-<x>-<y>.png`` of val/test patch i (image and mask)."""
        patient, x, y = self._where(i)
        return f'{patient}-{x}-{y}.png'

"""Facts about BCSS-WSSS shared by the dataset, the generator, the metric and the report.

See docs/datasets.md, section 1.
"""

#: Tissue classes in label order; index 4 in masks is background / excluded tissue.
TISSUE_CLASSES = ('TUM', 'STR', 'LYM', 'NEC')
BACKGROUND = 'BG'
BACKGROUND_INDEX = 4
ALL_CLASSES = TISSUE_CLASSES + (BACKGROUND, )
NUM_TISSUE_CLASSES = len(TISSUE_CLASSES)

#: RGB palette of the mask PNGs, indexed by mask value.
PALETTE = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (153, 0, 255), (255, 255, 255))

#: Normalisation statistics of the published methods, per channel on 0..1 values, in BGR order
#: (the public code reads images with OpenCV and never converts to RGB).
MEAN_BGR_01 = (0.66791496, 0.47791372, 0.70623304)
STD_BGR_01 = (0.1736589, 0.22564577, 0.19820057)
MEAN_BGR_255 = tuple(round(v * 255, 6) for v in MEAN_BGR_01)
STD_BGR_255 = tuple(round(v * 255, 6) for v in STD_BGR_01)

#: Native patch size of the release.
PATCH_SIZE = 224

#: Split sizes of the release (train: labels in the names; val/test: img/ + mask/).
RELEASE_SPLIT_SIZES = {'train': 23422, 'val': 3418, 'test': 4986}

#: Accepted names of the validation split folder (the release says val/, some code valid/).
VAL_SPLIT_NAMES = ('val', 'valid')

"""Facts about LUAD-HistoSeg (lung adenocarcinoma; the sister set of BCSS-WSSS, same authors).

See docs/datasets.md, section 4. The layout is BCSS-WSSS's (``train/*.png``,
``val|valid/{img,mask}``, ``test/{img,mask}``); names, classes and palette differ.
"""

#: Tissue classes in label order (TE tumour epithelium, NEC necrosis, LYM lymphocytes, TAS
#: tumour-associated stroma); index 4 in masks is white background / excluded tissue.
TISSUE_CLASSES = ('TE', 'NEC', 'LYM', 'TAS')
BACKGROUND = 'BG'
BACKGROUND_INDEX = 4
ALL_CLASSES = TISSUE_CLASSES + (BACKGROUND, )
NUM_TISSUE_CLASSES = len(TISSUE_CLASSES)

#: RGB palette of the mask PNGs ('P' mode), indexed by mask value.
PALETTE = ((205, 51, 51), (0, 255, 0), (65, 105, 225), (255, 165, 0), (255, 255, 255))

#: Native patch size of the release (10x).
PATCH_SIZE = 224

#: Split sizes of the release (train: labels in the names; val/test: img/ + mask/).
RELEASE_SPLIT_SIZES = {'train': 16678, 'val': 300, 'test': 307}

"""Synthetic stand-in for BCSS-WSSS (docs/datasets.md, section 3), in the release's exact layout.

``write_synthetic_dataset`` writes ``train/<slide-region>+<index>[abcd].png`` (labels in the
names, no masks) and ``val|test/{img,mask}/<slide-region>+<index>.png`` (palette masks 0..4),
plus ``manifest.json`` (counts, class frequencies, seed, version, sha256 of every file). Output is
byte-identical for a seed, version and knobs. ``default_synthetic_root`` builds a default set
once in a cache dir. Its numbers are never BCSS-WSSS numbers.

``layout='luad'`` writes the same pixels in the LUAD-HistoSeg layout (class order, palette and
names of that release: ``synthetic_luad``); the default ``layout='bcss'`` output is unchanged.

Versions (``version=``): 2, one stationary sub-morphology per class region (``synthetic_tissue``);
3, sub-morphologies mixed inside class regions, look-alike colours, knobs, a larger test split and
the sub-morphology maps of val/test in ``<root>/submorphology/`` (``synthetic_v3``).
"""
import hashlib
import json
import os
import shutil
import string
import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from .bcss_meta import ALL_CLASSES, BACKGROUND_INDEX, NUM_TISSUE_CLASSES, PATCH_SIZE
from .filenames import format_train_name
from .layouts import BCSS, DatasetLayout, get_layout
from .validation import MANIFEST_NAME
from .synthetic_tissue import BACKGROUND_MORPHOLOGY, MORPHOLOGIES, Stain, render_patch, smooth_noise
from . import synthetic_luad, synthetic_v3
from .synthetic_v3 import Knobs

#: Generator versions that can be written; a version's output never changes (add a new one
#: whenever the generated pixels or layout would change; the version names the cache folder).
VERSIONS = (2, 3)
#: Version of the default set (``data_root=None``) and of ``lpd-bench data synth``.
DEFAULT_VERSION = 3
DEFAULT_SEED = 0
DEFAULT_PATCH_SIZE = PATCH_SIZE
#: Images per split of each version's default set.
SPLIT_SIZES = {2: {'train': 480, 'val': 64, 'test': 128},
               3: {'train': 480, 'val': 128, 'test': 512}}
#: Images per split of the default version (read at call time, so tests can shrink it).
DEFAULT_SPLIT_SIZES = dict(SPLIT_SIZES[DEFAULT_VERSION])
#: Folder (under the dataset root) of version 3's sub-morphology maps, outside the BCSS layout.
SUBMORPHOLOGY_DIR = 'submorphology'
SUBMORPHOLOGY_LEGEND = 'legend.json'
#: Environment variable naming the cache dir (default ~/.cache/lpd-bench).
CACHE_ENV = 'LPD_BENCH_CACHE'

#: A class is kept in a patch only if it covers at least this share of the tissue pixels; smaller
#: regions are given to the neighbouring classes, so train labels equal the mask's classes.
MIN_CLASS_FRACTION = 0.02
#: Chance of each tissue class being drawn (TUM, STR, LYM, NEC), of 1/2/3 classes per patch, of a
#: white background region, and that region's share of the patch.
CLASS_PRIOR = (0.34, 0.30, 0.20, 0.16)
NUM_CLASSES_PRIOR = (0.42, 0.38, 0.20)
BACKGROUND_PROB = 0.35
BACKGROUND_SHARE = (0.05, 0.45)
#: Patches per slide region (train and held-out splits use different regions).
PATCHES_PER_REGION = {'train': 40, 'val': 16, 'test': 16}
_SPLIT_IDS = {'train': 0, 'val': 1, 'test': 2}
#: TCGA tissue-source-site codes of breast cancer slides, for realistic region names.
_TCGA_SITES = ('A1', 'A2', 'A7', 'A8', 'AC', 'AN', 'AO', 'AQ', 'AR', 'B6', 'BH', 'C8', 'D8', 'E2',
               'E9', 'EW', 'GM', 'LL', 'OL', 'S3')
#: Generator stream of the LUAD layout's names (the BCSS names come from ``region_names``).
_LUAD_NAMES_STREAM = 11


def region_names(seed: int, split: str, count: int) -> list:
    """Slide-region names like ``TCGA-A2-B7Q1-DX1_xmin45749_ymin25055_MPP-0.2500``."""
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], 7])
    alnum = np.array(list(string.ascii_uppercase + string.digits))
    names = []
    for _ in range(count):
        site = _TCGA_SITES[rng.integers(len(_TCGA_SITES))]
        patient = ''.join(rng.choice(alnum, 4))
        x, y = rng.integers(10000, 99999, 2)
        names.append(f'TCGA-{site}-{patient}-DX1_xmin{x}_ymin{y}_MPP-0.2500')
    return names


def sample_mask(rng, size: int) -> np.ndarray:
    """Region layout (size, size) uint8: 1..3 tissue classes with irregular borders, maybe BG.

    Borders come from the argmax of smooth noise fields with finer noise added (warped edges).
    """
    k = rng.choice(3, p=NUM_CLASSES_PRIOR) + 1
    classes = rng.choice(NUM_TISSUE_CLASSES, k, replace=False, p=CLASS_PRIOR)
    scores = np.stack([
        smooth_noise(rng, size, rng.uniform(1.2, 3)) + 0.35 * smooth_noise(rng, size, 8) +
        0.12 * smooth_noise(rng, size, 24) + rng.normal(0, 0.4) for _ in classes
    ])
    background = np.zeros((size, size), bool)
    if rng.random() < BACKGROUND_PROB:
        field = smooth_noise(rng, size, rng.uniform(1.2, 2.5)) + 0.25 * smooth_noise(
            rng, size, 10) + 0.08 * smooth_noise(rng, size, 30)
        background = field > np.quantile(field, 1 - rng.uniform(*BACKGROUND_SHARE))
    alive = np.ones(k, bool)
    while True:
        mask = classes[np.argmax(np.where(alive[:, None, None], scores, -np.inf), 0)]
        mask = mask.astype(np.uint8)
        mask[background] = BACKGROUND_INDEX
        counts = np.bincount(mask[~background], minlength=NUM_TISSUE_CLASSES)[classes]
        small = alive & (counts < MIN_CLASS_FRACTION * (~background).sum())
        if not small.any():
            return mask
        alive[np.flatnonzero(small)[np.argmin(counts[small])]] = False


def mask_label(mask: np.ndarray) -> np.ndarray:
    """Multi-hot (4,) int64 of the tissue classes present in a mask."""
    counts = np.bincount(mask.ravel(), minlength=len(ALL_CLASSES))
    return (counts[:NUM_TISSUE_CLASSES] > 0).astype(np.int64)


def generate_patch(seed: int, split: str, index: int, size: int, slide: 'Slide'):
    """One version-2 (rgb uint8 HxWx3, mask uint8 HxW) pair; deterministic in (seed, split,
    index, size)."""
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], index, 1])
    mask = sample_mask(rng, size)
    morph = {}
    for value in np.unique(mask):
        if value == BACKGROUND_INDEX:
            morph[BACKGROUND_INDEX] = BACKGROUND_MORPHOLOGY
        else:
            first = rng.random() < slide.first_morphology_prob[value]
            morph[int(value)] = MORPHOLOGIES[value][0 if first else 1]
    return render_patch(mask, morph, slide.stain, rng), mask


def generate_patch_v3(seed: int, split: str, index: int, size: int,
                      slide: 'synthetic_v3.SlideV3', knobs: Knobs):
    """One version-3 (rgb, mask, sub-morphology map) triple (uint8; HxWx3, HxW, HxW).

    The layout (mask) is version 2's patch of the same (seed, split, index, size); the rest is
    drawn after it from the same stream.
    """
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], index, 1])
    mask = sample_mask(rng, size)
    rgb, sub = synthetic_v3.generate_patch_v3(mask, slide, knobs, rng)
    return rgb, mask, sub


class Slide:
    """A version-2 slide region: its name, stain and its preference among each class's
    morphologies."""

    def __init__(self, name: str, rng):
        self.name = name
        self.stain = Stain.sample(rng)
        self.first_morphology_prob = rng.uniform(0.2, 0.8, NUM_TISSUE_CLASSES)


def _save_png(path: Path, array: np.ndarray, palette: Optional[list] = None) -> None:
    """Save ``array``; with ``palette`` (flat RGB list) as a 'P'-mode palette PNG."""
    img = Image.fromarray(array)
    if palette is not None:
        img.putpalette(palette)
    img.save(path, format='PNG', compress_level=3)


class _BcssNames:
    """BCSS-WSSS file names of a split's patches: patch i is patch ``i // len(slides)`` of
    slide region ``i % len(slides)``."""

    def __init__(self, slides: list):
        self.slides = slides

    def region_names(self) -> list:
        return [s.name for s in self.slides]

    def train_name(self, i: int, label) -> str:
        n = len(self.slides)
        return format_train_name(self.slides[i % n].name, i // n, label)

    def heldout_name(self, i: int) -> str:
        n = len(self.slides)
        return f'{self.slides[i % n].name}+{i // n}.png'


def _split_names(layout: DatasetLayout, seed: int, split: str, slides: list, size: int):
    """The file-name maker of a split in ``layout``."""
    if layout is BCSS:
        return _BcssNames(slides)
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], _LUAD_NAMES_STREAM])
    return synthetic_luad.LuadNames(rng, len(slides), size)


def split_slides(seed: int, split: str, count: int, version: int = 2,
                 knobs: Optional[Knobs] = None) -> list:
    """The slide regions of a split of ``count`` patches; patch i comes from slide i % len.

    Version 3 slides (``knobs``: None = the default knobs) are drawn from their own stream.
    """
    n_regions = max(1, -(-count // PATCHES_PER_REGION[split]))
    names = region_names(seed, split, n_regions)
    if version == 2:
        return [Slide(name, np.random.default_rng([seed, _SPLIT_IDS[split], r, 2]))
                for r, name in enumerate(names)]
    knobs = Knobs() if knobs is None else knobs
    return [synthetic_v3.SlideV3(name, np.random.default_rng([seed, _SPLIT_IDS[split], r, 4]),
                                 knobs) for r, name in enumerate(names)]


def _generate_split(root: Path, split: str, count: int, seed: int, size: int, progress,
                    version: int = 2, knobs: Optional[Knobs] = None,
                    layout: DatasetLayout = BCSS):
    """Write one split in ``layout``; return its manifest statistics."""
    slides = split_slides(seed, split, count, version, knobs)
    n_regions = len(slides)
    names = _split_names(layout, seed, split, slides, size)
    palette = [v for rgb in layout.palette for v in rgb]
    sub_dir = root / SUBMORPHOLOGY_DIR / split
    if split == 'train':
        (root / split).mkdir(parents=True)
    else:
        (root / split / 'img').mkdir(parents=True)
        (root / split / 'mask').mkdir()
        if version == 3:
            sub_dir.mkdir(parents=True)
    images = np.zeros(NUM_TISSUE_CLASSES, np.int64)
    pixels = np.zeros(len(ALL_CLASSES), np.int64)
    per_image = np.zeros(NUM_TISSUE_CLASSES + 1, np.int64)
    sub_pixels = np.zeros(len(synthetic_v3.ID_CLASS), np.int64)
    for i in range(count):
        slide = slides[i % n_regions]
        if version == 2:
            rgb, mask = generate_patch(seed, split, i, size, slide)
        else:
            rgb, mask, sub = generate_patch_v3(seed, split, i, size, slide, knobs)
            sub_pixels += np.bincount(sub.ravel(), minlength=len(sub_pixels))
        if layout is not BCSS:
            mask = synthetic_luad.relabel(mask)
        label = mask_label(mask)
        if split == 'train':
            _save_png(root / split / names.train_name(i, label), rgb)
        else:
            name = names.heldout_name(i)
            _save_png(root / split / 'img' / name, rgb)
            _save_png(root / split / 'mask' / name, mask, palette=palette)
            if version == 3:
                _save_png(sub_dir / name, sub)
        images += label
        pixels += np.bincount(mask.ravel(), minlength=len(ALL_CLASSES))
        per_image[label.sum()] += 1
        if progress is not None:
            progress(split, i + 1, count)
    stats = dict(
        images=count,
        regions=names.region_names(),
        image_level={c: int(n) for c, n in zip(layout.tissue_classes, images)},
        pixel_level={c: round(float(n) / max(1, pixels.sum()), 6)
                     for c, n in zip(layout.classes, pixels)},
        classes_per_image={str(k): int(n) for k, n in enumerate(per_image) if k},
    )
    if version == 3:  # pixel share of every sub-morphology id (all splits; maps of val/test only)
        stats['submorphology_pixel_level'] = {
            str(k): round(float(n) / max(1, sub_pixels.sum()), 6)
            for k, n in enumerate(sub_pixels)}
    return stats


def _build_manifest(root: Path, seed: int, size: int, stats: dict, version: int = 2,
                    knobs: Optional[Knobs] = None, layout: DatasetLayout = BCSS) -> dict:
    files = sorted(p for p in root.rglob('*.png'))
    extra = {}
    note = ('Synthetic stand-in for BCSS-WSSS: never report its numbers as BCSS-WSSS numbers. '
            'image_level counts images with each class; pixel_level is the pixel share per mask '
            'value (train masks are not written but were used for the labels).')
    if layout is not BCSS:
        extra.update(layout=layout.key, stand_in=dict(synthetic_luad.STAND_IN))
        note = (f'Synthetic stand-in in the {layout.title} layout (the BCSS-WSSS stand-in\'s '
                'pixels, each generated class standing in for the LUAD class in stand_in): never '
                f'report its numbers as {layout.title} or BCSS-WSSS numbers. ' +
                note.split('numbers. ', 1)[1])
    if version == 3:
        extra.update(
            knobs=knobs.to_dict(),
            difficulty=synthetic_v3.difficulty_name(knobs),
            submorphology=dict(
                folder=SUBMORPHOLOGY_DIR, splits=['val', 'test'], legend=SUBMORPHOLOGY_LEGEND,
                note=f'{SUBMORPHOLOGY_DIR}/<split>/<name>.png: uint8 map of the sub-morphology '
                'each pixel was drawn from (0 = background; ids in legend.json), for the val and '
                f'test images of the same name; outside the {layout.title} layout.'),
        )
    return dict(
        **extra,
        generator='lpd_bench.data.synthetic',
        generator_version=version,
        synthetic=True,
        note=note,
        seed=seed,
        patch_size=size,
        classes=list(layout.classes),
        palette=[list(rgb) for rgb in layout.palette],
        min_class_fraction=MIN_CLASS_FRACTION,
        counts={split: s['images'] for split, s in stats.items()},
        splits=stats,
        sha256={p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in files},
    )


def write_synthetic_dataset(out_dir,
                            seed: int = DEFAULT_SEED,
                            n_train: Optional[int] = None,
                            n_val: Optional[int] = None,
                            n_test: Optional[int] = None,
                            patch_size: int = DEFAULT_PATCH_SIZE,
                            overwrite: bool = False,
                            progress: Optional[Callable[[str, int, int], None]] = None,
                            version: int = DEFAULT_VERSION,
                            knobs: Optional[Knobs] = None,
                            layout='bcss') -> Path:
    """Generate a synthetic dataset into ``out_dir`` in ``layout`` ('bcss': BCSS-WSSS, 'luad':
    LUAD-HistoSeg, the same pixels relabelled and renamed); return its path.

    Split sizes left None are the version's defaults (``SPLIT_SIZES``). ``knobs`` (version 3
    only; None = the default knobs) set heterogeneity, look-alike strength, stain variation and
    the mixing scale. Files are written into a temporary folder next to ``out_dir`` that is
    renamed at the end, so a half-written set is never visible. An existing non-empty
    ``out_dir`` is an error unless ``overwrite``. ``progress(split, done, total)`` is called
    after every patch.
    """
    out = Path(out_dir)
    layout = get_layout(layout)
    if version not in VERSIONS:
        raise ValueError(f'unknown generator version {version!r}; expected one of {VERSIONS}')
    if version == 2 and knobs is not None:
        raise ValueError('knobs apply to version 3 only')
    if version == 3 and knobs is None:
        knobs = Knobs()
    sizes = SPLIT_SIZES[version]
    counts = {'train': sizes['train'] if n_train is None else n_train,
              'val': sizes['val'] if n_val is None else n_val,
              'test': sizes['test'] if n_test is None else n_test}
    bad = {k: v for k, v in counts.items() if int(v) < 1}
    if bad or patch_size < 16:
        raise ValueError(f'split sizes must be >= 1 (got {bad}) and patch_size >= 16 '
                         f'(got {patch_size})')
    if out.exists() and not out.is_dir():
        raise FileExistsError(f'{out} exists and is not a directory')
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f'{out} exists and is not empty (use overwrite=True / --overwrite)')
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.tmp-', dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        stats = {
            split: _generate_split(tmp, split, int(n), seed, patch_size, progress, version, knobs,
                                   layout)
            for split, n in counts.items()
        }
        if version == 3:
            legend = synthetic_v3.submorphology_legend()
            if layout is not BCSS:
                legend = synthetic_luad.legend(legend)
            (tmp / SUBMORPHOLOGY_DIR / SUBMORPHOLOGY_LEGEND).write_text(
                json.dumps(legend, indent=1, sort_keys=True) + '\n')
        manifest = _build_manifest(tmp, seed, patch_size, stats, version, knobs, layout)
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True) + '\n')
        _install(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _install(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` to ``out`` (replacing it if ``overwrite``)."""
    try:
        os.rename(tmp, out)  # atomic; also replaces an empty directory
        return
    except OSError:
        if not overwrite or not out.is_dir():
            raise FileExistsError(f'{out} appeared while the dataset was being generated')
    old = Path(tempfile.mkdtemp(prefix=f'.{out.name}.old-', dir=out.parent))
    os.rename(out, old / 'data')
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def cache_dir() -> Path:
    """``$LPD_BENCH_CACHE`` or ``~/.cache/lpd-bench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / '.cache' / 'lpd-bench')


def synthetic_root_name(seed: int, version: int, sizes: dict, patch_size: int,
                        knobs: Optional[Knobs] = None, layout='bcss') -> str:
    """Cache folder name of a generated set: layout (LUAD only), version, seed, size, split
    sizes and (version 3) the knobs, e.g.
    ``synthetic-v3-seed0-224px-480-128-512-het0.75-look0.85-stain1-mix40`` (BCSS-WSSS) or
    ``synthetic-luad-v3-seed0-...`` (LUAD-HistoSeg)."""
    layout = get_layout(layout)
    prefix = 'synthetic-' if layout is BCSS else f'synthetic-{layout.key}-'
    name = (f'{prefix}v{version}-seed{seed}-{patch_size}px-'
            f'{sizes["train"]}-{sizes["val"]}-{sizes["test"]}')
    if version == 3:
        name += '-' + (Knobs() if knobs is None else knobs).tag()
    return name


def default_synthetic_root(seed: int = DEFAULT_SEED, version: Optional[int] = None,
                           knobs: Optional[Knobs] = None, layout='bcss') -> Path:
    """Path of a default-sized synthetic set (``version`` None = DEFAULT_VERSION; ``knobs``
    version 3 only, None = its default knobs; ``layout`` 'bcss' or 'luad', each in its own
    cache folder), generated on first use and reused afterwards.

    Safe when several processes race: each builds in its own temp dir; the first rename wins.
    """
    version = DEFAULT_VERSION if version is None else version
    if version == 3 and knobs is None:
        knobs = Knobs()
    sizes = DEFAULT_SPLIT_SIZES if version == DEFAULT_VERSION else SPLIT_SIZES[version]
    root = cache_dir() / synthetic_root_name(seed, version, sizes, DEFAULT_PATCH_SIZE, knobs,
                                             layout)
    if not (root / MANIFEST_NAME).is_file():
        try:
            write_synthetic_dataset(root, seed, sizes['train'], sizes['val'], sizes['test'],
                                    DEFAULT_PATCH_SIZE, version=version, knobs=knobs,
                                    layout=layout)
        except FileExistsError:
            if not (root / MANIFEST_NAME).is_file():
                raise
    return root

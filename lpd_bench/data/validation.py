"""Checks of a dataset folder; every problem is reported, not just the first.

Layout (BCSS-WSSS or LUAD-HistoSeg, see layouts.py): ``train/*.png`` (labels in the names),
``val|valid/{img,mask}/*.png``, ``test/{img,mask}/*.png``. Which of the two a folder holds is
told from its train file names (``detect_layout``); a folder mixing both namings is a problem.
Images must be 3-channel RGB PNGs of the patch size; masks single-channel PNGs with values
0..4, the same name and size as their image.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np
from PIL import Image

from .bcss_meta import ALL_CLASSES, PATCH_SIZE, VAL_SPLIT_NAMES
from .layouts import DEFAULT_LAYOUT, LAYOUTS, DatasetLayout, get_layout, naming_of

SPLITS = ('train', 'val', 'test')
MANIFEST_NAME = 'manifest.json'


@dataclass(frozen=True)
class DataProblem:
    """One problem with one file or folder."""
    path: str
    message: str

    def __str__(self):
        return f'{self.path}: {self.message}'


class DatasetError(ValueError):
    """A dataset folder has problems; ``problems`` lists all of them."""

    def __init__(self, problems: List[DataProblem], what: str = 'dataset'):
        self.problems = list(problems)
        lines = '\n'.join(f'  {p}' for p in self.problems)
        super().__init__(f'{what} has {len(self.problems)} problem(s):\n{lines}')


def split_dir(root, split: str) -> Path:
    """Folder of ``split`` under ``root``; ``val`` may be ``val/`` or ``valid/`` (not both).

    Raises:
        DatasetError: unknown split, folder missing, or both ``val/`` and ``valid/`` present.
    """
    path, problem = _find_split(Path(root), split)
    if problem is not None:
        raise DatasetError([problem], f'dataset {root}')
    return path


def _find_split(root: Path, split: str):
    """(folder, None) or (None, DataProblem)."""
    if split not in SPLITS:
        return None, DataProblem(str(root), f'unknown split {split!r}; expected one of {SPLITS}')
    names = VAL_SPLIT_NAMES if split == 'val' else (split, )
    found = [root / n for n in names if (root / n).is_dir()]
    if len(found) > 1:
        return None, DataProblem(
            str(root), f'both {" and ".join(n + "/" for n in names)} exist; keep only one')
    if not found:
        return None, DataProblem(str(root / split), f'missing split folder '
                                 f'({" or ".join(n + "/" for n in names)})')
    return found[0], None


def expected_patch_size(root, patch_size: Optional[int] = None) -> int:
    """``patch_size`` if given, else the manifest's ``patch_size`` if any, else 224."""
    if patch_size is not None:
        return int(patch_size)
    manifest = Path(root) / MANIFEST_NAME
    if manifest.is_file():
        try:
            return int(json.loads(manifest.read_text())['patch_size'])
        except (ValueError, KeyError, TypeError) as err:
            raise DatasetError([DataProblem(str(manifest), f'unreadable manifest ({err})')])
    return PATCH_SIZE


def _pngs(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == '.png' and p.is_file())


def _check_image(path: Path, size: int):
    """Problems of one image (header + CRC check, no full decode) and its (w, h) or None."""
    try:
        with Image.open(path) as im:
            fmt, mode, dims = im.format, im.mode, im.size
            im.verify()
    except Exception as err:  # PIL raises many types for corrupt files
        return [DataProblem(str(path), f'unreadable or corrupt image ({type(err).__name__}: '
                            f'{err})')], None
    problems = []
    if fmt != 'PNG':
        problems.append(DataProblem(str(path), f'is a {fmt} file, expected PNG'))
    if mode != 'RGB':
        problems.append(DataProblem(
            str(path), f'has mode {mode} ({Image.getmodebands(mode)} channel(s)), expected '
            '3-channel RGB'))
    if dims != (size, size):
        problems.append(DataProblem(str(path), f'is {dims[0]}x{dims[1]} pixels, expected '
                                    f'{size}x{size}'))
    return problems, dims


def _check_mask(path: Path, image_dims):
    """Problems of one mask: readable, single channel, values 0..4, same size as its image."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            values = np.asarray(im)
    except Exception as err:
        return [DataProblem(str(path), f'unreadable or corrupt mask ({type(err).__name__}: '
                            f'{err})')]
    if mode not in ('P', 'L'):
        return [DataProblem(str(path), f'mask has mode {mode}, expected a single-channel '
                            "('P' palette or 'L') PNG")]
    problems = []
    bad = np.unique(values[values >= len(ALL_CLASSES)])
    if bad.size:
        problems.append(DataProblem(str(path), f'mask values {bad.tolist()} outside '
                                    f'0..{len(ALL_CLASSES) - 1}'))
    dims = (values.shape[1], values.shape[0])
    if image_dims is not None and dims != tuple(image_dims):
        problems.append(DataProblem(str(path), f'mask is {dims[0]}x{dims[1]} but its image is '
                                    f'{image_dims[0]}x{image_dims[1]}'))
    return problems


@dataclass(frozen=True)
class LayoutFinding:
    """Which layout a dataset folder holds and how that was told.

    Attributes:
        layout: the layout found (with ``mixed``, the one most train names follow).
        source: 'train file names', 'manifest.json' (a generated set without train names) or
            'default' (nothing to tell from: BCSS-WSSS).
        mixed: the train folder holds names of both layouts.
        counts: train files per layout key (names without a ``[...]`` group are not counted).
        examples: the first train file (sorted) per layout key.
    """
    layout: DatasetLayout
    source: str
    mixed: bool = False
    counts: Dict[str, int] = field(default_factory=dict)
    examples: Dict[str, str] = field(default_factory=dict)

    def __str__(self):
        if self.mixed:
            return 'mixed: ' + ' and '.join(
                f'{self.counts[k]} {LAYOUTS[k].title} train names (e.g. {self.examples[k]})'
                for k in LAYOUTS if k in self.counts)
        if self.source == 'train file names':
            return f'{self.layout.title} (from {sum(self.counts.values())} train file names)'
        if self.source == MANIFEST_NAME:
            return f'{self.layout.title} (from {MANIFEST_NAME}; no train file names to tell)'
        return f'{self.layout.title} (default; no train file names to tell)'


def detect_layout(root) -> LayoutFinding:
    """The layout of the dataset at ``root``, from its train file names (``layouts.naming_of``),
    else from the ``layout`` of its manifest.json (generated sets), else BCSS-WSSS."""
    root = Path(root)
    counts, examples = {}, {}
    folder, _ = _find_split(root, 'train') if root.is_dir() else (None, None)
    for path in _pngs(folder) if folder is not None else ():
        naming = naming_of(path)
        if naming is not None:
            counts[naming.key] = counts.get(naming.key, 0) + 1
            examples.setdefault(naming.key, str(path))
    if counts:
        most = max(LAYOUTS, key=lambda k: counts.get(k, 0))  # ties: the first (BCSS-WSSS)
        return LayoutFinding(LAYOUTS[most], 'train file names', len(counts) > 1, counts, examples)
    try:
        key = json.loads((root / MANIFEST_NAME).read_text()).get('layout')
    except (OSError, ValueError, AttributeError):
        key = None
    if key in LAYOUTS:
        return LayoutFinding(LAYOUTS[key], MANIFEST_NAME)
    return LayoutFinding(DEFAULT_LAYOUT, 'default')


def _check_train(folder: Path, size: int, finding: LayoutFinding,
                 expected: Optional[DatasetLayout]) -> List[DataProblem]:
    """Problems of the train split: mixed namings, another layout than ``expected``, every bad
    label (each name read by the parser of the layout it is written in) and image."""
    problems = []
    layout = finding.layout
    if finding.mixed:
        examples = ' and '.join(f'{finding.examples[k]} ({LAYOUTS[k].title}, '
                                f'{finding.counts[k]} file(s))' for k in LAYOUTS)
        problems.append(DataProblem(str(folder), f'mixes the train namings of both layouts, '
                                    f'e.g. {examples}; a dataset folder holds one layout'))
    elif expected is not None and expected != layout:
        if finding.source == 'train file names':
            problems.append(DataProblem(
                str(folder), f'holds {layout.title} train names (e.g. '
                f'{finding.examples[layout.key]}) but the dataset expects {expected.title} '
                f'({expected.train_name_pattern})'))
        else:
            layout = expected
    for path in _pngs(folder):
        own = naming_of(path) if finding.mixed else None
        try:
            (own or layout).parse_train_label(path)
        except ValueError as err:
            problems.append(DataProblem(str(path), getattr(err, 'problem', str(err))))
        problems += _check_image(path, size)[0]
    return problems


def _check_annotated(folder: Path, size: int) -> List[DataProblem]:
    img_dir, mask_dir = folder / 'img', folder / 'mask'
    missing = [DataProblem(str(d), 'missing folder') for d in (img_dir, mask_dir) if not d.is_dir()]
    if missing:
        return missing
    images = {p.name: p for p in _pngs(img_dir)}
    masks = {p.name: p for p in _pngs(mask_dir)}
    problems = [DataProblem(str(masks[n]), 'mask without image') for n in sorted(set(masks) -
                                                                                  set(images))]
    for name, path in images.items():
        img_problems, dims = _check_image(path, size)
        problems += img_problems
        if name not in masks:
            problems.append(DataProblem(str(path), f'image without mask (expected {mask_dir / name})'))
        else:
            problems += _check_mask(masks[name], dims)
    return problems


def check_dataset(root,
                  splits: Iterable[str] = SPLITS,
                  patch_size: Optional[int] = None,
                  layout=None) -> List[DataProblem]:
    """Return every problem found in the given splits of the dataset at ``root`` (empty = clean).

    The layout is detected (``detect_layout``); ``layout`` (a key or DatasetLayout), if given,
    is the one expected: train names of the other layout are then a problem.
    """
    root = Path(root)
    if not root.is_dir():
        return [DataProblem(str(root), 'dataset folder does not exist')]
    try:
        size = expected_patch_size(root, patch_size)
    except DatasetError as err:
        return err.problems
    expected = None if layout is None else get_layout(layout)
    finding = detect_layout(root)
    problems = []
    for split in splits:
        folder, problem = _find_split(root, split)
        if problem is not None:
            problems.append(problem)
            continue
        images = folder if split == 'train' else folder / 'img'
        if images.is_dir() and not _pngs(images):
            problems.append(DataProblem(str(images), 'split has no PNG images'))
            continue
        if split == 'train':
            problems += _check_train(folder, size, finding, expected)
        else:
            problems += _check_annotated(folder, size)
    return problems


def assert_valid_dataset(root, splits: Iterable[str] = SPLITS,
                         patch_size: Optional[int] = None, layout=None) -> None:
    """Raise DatasetError listing all problems of ``root`` if there are any."""
    problems = check_dataset(root, splits, patch_size, layout)
    if problems:
        raise DatasetError(problems, f'dataset {root}')

"""A pseudo-mask folder: palette PNGs named as the images, plus ``manifest.json`` written last.

The folder contract shared by the writer (:mod:`.pseudo_masks`), the quality score
(:mod:`.quality`) and the reader (:class:`~.pseudo_mask_dataset.PseudoMaskDataset`):

- ``<image file name>``: a single-channel 'P'-mode PNG of the image's size, values 0..3 (tissue
  classes in the layout's order), 4 (background) or 255 (ignore: below the confidence threshold),
  with the layout's palette (255 is black);
- ``manifest.json``: written atomically once every mask is there; its presence means complete;
- ``.partial.json``: the identity of the run writing the folder, present from the start until the
  manifest is written, so a killed run is recognised (and resumed by the same run only);
- each PNG is written to a temp file and renamed, so a PNG that exists is whole.
"""
import json
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from ..engine.atomic_json import write_json_atomic

MANIFEST_NAME = 'manifest.json'
PARTIAL_NAME = '.partial.json'
IGNORE_INDEX = 255
NUM_CLASSES = 5  # 4 tissue classes + background (mask value 4)
#: Values a pseudo-mask may hold.
VALID_VALUES = tuple(range(NUM_CLASSES)) + (IGNORE_INDEX, )


class MaskFolderError(ValueError):
    """An output folder that cannot take these pseudo-masks (another run's, or not ours)."""


def flat_palette(palette: Sequence[Sequence[int]]) -> list:
    """The 256-entry flat RGB palette of a mask: the layout's colours, then black (255 too)."""
    flat = [int(v) for rgb in palette for v in rgb]
    return flat + [0] * (3 * 256 - len(flat))


def write_mask(path, mask: np.ndarray, palette: Sequence[Sequence[int]]) -> None:
    """Save ``mask`` (H, W) uint8 as a 'P'-mode PNG with ``palette``, atomically (temp + rename)."""
    path = Path(path)
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode='P')
    image.putpalette(flat_palette(palette))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            image.save(f, format='PNG', compress_level=3)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_mask(path) -> np.ndarray:
    """The values (H, W) uint8 of a mask PNG (palette indices, not colours)."""
    with Image.open(path) as image:
        return np.asarray(image)


def value_counts(mask: np.ndarray) -> np.ndarray:
    """Pixels per value 0..4, then ignored (255): (6,) int64; other values are not counted."""
    counts = np.bincount(mask.ravel(), minlength=256)
    return np.concatenate([counts[:NUM_CLASSES], counts[IGNORE_INDEX:]]).astype(np.int64)


def read_manifest(folder) -> Optional[dict]:
    """The manifest of a complete folder, or None (none yet, or unreadable)."""
    try:
        return json.loads((Path(folder) / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def differences(expected: dict, found: dict) -> list:
    """Keys whose values differ between two identities, with both values, for messages."""
    keys = sorted(set(expected) | set(found))
    return [f'{key}: {found.get(key)!r} there, {expected.get(key)!r} now'
            for key in keys if expected.get(key) != found.get(key)]


def open_folder(folder, identity: dict) -> Optional[dict]:
    """Prepare ``folder`` for the pseudo-masks of ``identity`` (what makes them these masks:
    checkpoint, split, data, protocol, threshold...).

    Returns the folder's manifest when it already holds exactly these masks, complete; else None
    after marking the folder partial (new folder, empty folder, or a killed run of the same
    identity, whose whole PNGs are reused).

    Raises:
        MaskFolderError: the folder holds another run's masks (complete or partial), or files that
            are not a pseudo-mask folder's.
    """
    folder = Path(folder)
    manifest_path, partial_path = folder / MANIFEST_NAME, folder / PARTIAL_NAME
    if manifest_path.exists():
        manifest = read_manifest(folder)
        found = (manifest or {}).get('identity')
        if found == identity:
            return manifest
        detail = ('; '.join(differences(identity, found)) if isinstance(found, dict)
                  else 'unreadable manifest')
        raise MaskFolderError(
            f'{folder} already holds pseudo-masks of another run ({MANIFEST_NAME}: {detail}); '
            'choose another output folder or delete this one')
    if partial_path.exists():
        try:
            found = json.loads(partial_path.read_text())
        except (OSError, ValueError):
            found = None
        if found != identity:
            detail = ('; '.join(differences(identity, found)) if isinstance(found, dict)
                      else 'unreadable')
            raise MaskFolderError(
                f'{folder} holds the unfinished pseudo-masks of another run ({PARTIAL_NAME}: '
                f'{detail}); choose another output folder or delete this one')
    elif folder.is_dir() and any(folder.iterdir()):
        raise MaskFolderError(f'{folder} is not empty and is not a pseudo-mask folder (no '
                              f'{MANIFEST_NAME} or {PARTIAL_NAME}); choose an empty or new folder')
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(partial_path, identity)
    return None


def finish_folder(folder, manifest: dict) -> None:
    """Write the manifest (atomically), then drop the partial marker: the folder is complete."""
    write_json_atomic(Path(folder) / MANIFEST_NAME, manifest)
    (Path(folder) / PARTIAL_NAME).unlink(missing_ok=True)

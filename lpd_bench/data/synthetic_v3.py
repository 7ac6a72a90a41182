"""Synthetic data version 3: mixed sub-morphologies, look-alike colours, knobs (docs/datasets.md).

What changes from version 2 (whose code, in ``synthetic.py`` / ``synthetic_tissue.py``, is left
untouched so its output stays byte-identical):

- **Sub-morphologies mixed inside a class region.** Each class has three sub-morphologies
  (:data:`SUBMORPHOLOGIES`); a class region is split by a smooth random partition (argmax of smooth
  noise fields, blobs of about ``mix_scale`` pixels) among 1 to 3 of them, so that one prototype
  per class must average over different appearances. The partition is the *sub-morphology map*
  (ids in :func:`submorphology_legend`, 0 = background).
- **Look-alike colours.** Every sub-morphology's stain-concentration maps (haematoxylin ``h``,
  eosin ``e``) are pulled, with strength ``lookalike`` in 0..1, towards one shared set of
  statistics: the mean, the std of the coarse band (8-px block scale) and the std of the fine band
  (within a block), per stain. At 1 all classes have the same colour mean and contrast per block;
  what tells them apart is shape: nuclear size, shape and spacing, fibre orientation, debris.
- **Stain variation** ``stain_variation`` scales the per-slide (and, at a third of it, per-patch)
  stain perturbations; 1 is version 2's range.

:class:`Knobs` holds the settings; :data:`DIFFICULTIES` the presets of ``--difficulty``.
"""
from dataclasses import asdict, dataclass
from typing import Dict

import numpy as np
from scipy import ndimage

from .bcss_meta import BACKGROUND_INDEX, NUM_TISSUE_CLASSES, TISSUE_CLASSES
from . import synthetic_tissue as st
from .synthetic_tissue import (E_OD, H_OD, Stain, grain, jittered_grid, render_rgb, smooth_noise,
                               stamp_nuclei, streaks)

#: Sub-morphology names per tissue class (index = class id).
SUBMORPHOLOGIES = (
    ('solid', 'glandular', 'cords'),
    ('dense', 'loose', 'cellular'),
    ('sheet', 'aggregate', 'scattered'),
    ('debris', 'ghost', 'amorphous'),
)
#: Sub-morphology id of background in the maps.
BACKGROUND_ID = 0
#: Width (gaussian sigma, px) separating the coarse (block-scale) and fine bands in the colour
#: matching: an 8-px block mean keeps mostly the coarse band.
BAND_SIGMA = 3.0


@dataclass(frozen=True)
class Knobs:
    """Settings of version 3 (recorded in manifest.json and in the cache folder name).

    heterogeneity: 0..1; a class region mixes ``1 + Binomial(2, heterogeneity)`` of its class's
        three sub-morphologies (0: one per region, as in version 2; 1: all three).
    lookalike: 0..1; how far every sub-morphology's colour statistics are pulled to shared ones.
    stain_variation: >= 0; scale of the per-slide stain perturbation (1 = version 2's range).
    mix_scale: size in pixels (at 224 px patches) of the blobs of the sub-morphology partition.
    """
    heterogeneity: float = 0.75
    lookalike: float = 0.85
    stain_variation: float = 1.0
    mix_scale: float = 40.0

    def __post_init__(self):
        if not 0 <= self.heterogeneity <= 1 or not 0 <= self.lookalike <= 1:
            raise ValueError(f'heterogeneity and lookalike must be in 0..1 (got '
                             f'{self.heterogeneity}, {self.lookalike})')
        if self.stain_variation < 0 or self.mix_scale <= 0:
            raise ValueError(f'stain_variation must be >= 0 and mix_scale > 0 (got '
                             f'{self.stain_variation}, {self.mix_scale})')

    def tag(self) -> str:
        """Short text naming the settings, e.g. ``het0.75-look0.85-stain1-mix40``."""
        return (f'het{self.heterogeneity:g}-look{self.lookalike:g}-'
                f'stain{self.stain_variation:g}-mix{self.mix_scale:g}')

    def to_dict(self) -> dict:
        return {k: float(v) for k, v in asdict(self).items()}


#: Presets of ``lpd-bench data synth --difficulty``.
DIFFICULTIES = {
    'easy': Knobs(heterogeneity=0.25, lookalike=0.3, stain_variation=0.5),
    'default': Knobs(),
    'hard': Knobs(heterogeneity=1.0, lookalike=1.0, stain_variation=1.5),
}


def difficulty_name(knobs: Knobs) -> str:
    """The preset ``knobs`` equals, or 'custom'."""
    return next((name for name, k in DIFFICULTIES.items() if k == knobs), 'custom')


def submorphology_id(cls: int, index: int) -> int:
    """Id in the sub-morphology maps of sub-morphology ``index`` of tissue class ``cls``."""
    return 1 + sum(len(m) for m in SUBMORPHOLOGIES[:cls]) + index


def submorphology_legend() -> Dict[str, dict]:
    """``{"id": {"class": "TUM", "name": "solid"}}`` for every sub-morphology id (not 0)."""
    return {
        str(submorphology_id(c, j)): {'class': TISSUE_CLASSES[c], 'name': name}
        for c, names in enumerate(SUBMORPHOLOGIES) for j, name in enumerate(names)
    }


#: Class of every sub-morphology id (index = id; id 0 -> background).
ID_CLASS = np.array([BACKGROUND_INDEX] + [c for c, m in enumerate(SUBMORPHOLOGIES) for _ in m],
                    np.uint8)


# ----------------------------------------------------------------------------- textures
# Each returns (h, e) stain concentration maps (size, size); sizes in px at 224-px patches.


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def tumour_cords(rng, size):
    """Trabecular tumour: wavy cords one or two mid-size vesicular nuclei wide, separated by
    thin strands of stroma."""
    angle = rng.uniform(0, np.pi)
    spacing = rng.uniform(12, 16)
    ridge = streaks(rng, size, angle, size / rng.uniform(1.5, 3), spacing, warp=spacing)
    cords = ridge > rng.uniform(-0.4, 0.0)
    centres = jittered_grid(rng, size, rng.uniform(7, 8.5), 0.2)
    idx = np.clip(centres.astype(int), 0, size - 1)
    centres = centres[cords[idx[:, 0], idx[:, 1]] & (rng.random(len(centres)) < 0.8)]
    n = len(centres)
    nuc = stamp_nuclei(size, centres, rng.uniform(4.2, 5.6, n), rng.uniform(0.6, 0.85, n),
                       angle + rng.normal(0, 0.4, n), rng.uniform(0.8, 1.1, n), rng,
                       profile='vesicular', irregularity=0.12)
    band = ndimage.gaussian_filter(cords.astype(np.float32), 2.0)
    fib = st._fibres(rng, size, angle + rng.normal(0, 0.3), 1.2)
    e = 0.16 + 0.14 * band + 0.08 * fib * (1 - band) + 0.04 * grain(rng, size, 1.0)
    h = 0.06 + 0.06 * band + 1.1 * st._chromatin(nuc, rng, size)
    return h, e * (1 - 0.5 * nuc)


def stroma_cellular(rng, size):
    """Cellular (desmoplastic) stroma: wavy medium fibres crowded with plump spindle nuclei."""
    angle = rng.uniform(0, np.pi)
    fib = st._fibres(rng, size, angle, rng.uniform(1.2, 2.0))
    e = 0.2 + 0.3 * fib + 0.04 * grain(rng, size, 0.8)
    count = int(rng.integers(45, 80) * (size / 224)**2) + 2
    centres = rng.uniform(0, size, (count, 2))
    nuc = stamp_nuclei(size, centres, rng.uniform(6, 10, count), rng.uniform(0.28, 0.45, count),
                       angle + rng.normal(0, 0.2, count), rng.uniform(0.9, 1.2, count), rng,
                       irregularity=0.1)
    h = 0.05 + 0.03 * fib + 1.0 * st._chromatin(nuc, rng, size, 0.15)
    return h, e * (1 - 0.4 * nuc)


def lymphocyte_nodular(rng, size):
    """Lymphoid aggregates: compact nodules of small dark round nuclei in pale fibrous tissue."""
    cells = rng.uniform(3.5, 5.5) * size / 224
    density = _sigmoid(6 * (smooth_noise(rng, size, cells) - rng.uniform(-0.1, 0.4)))
    nuc = st._lymphocytes(rng, size, rng.uniform(7.5, 8.5), 0.97 * density)
    fib = st._fibres(rng, size, rng.uniform(0, np.pi), 1.0)
    e = 0.1 + 0.16 * fib * (1 - density) + 0.1 * density + 0.03 * grain(rng, size, 1.0)
    h = 0.04 + 0.06 * density + st._chromatin(nuc, rng, size, 0.12)
    return h, e * (1 - 0.6 * nuc)


def necrosis_amorphous(rng, size):
    """Comedo-type necrosis: smooth eosinophilic mass with fibrin threads and shrunken, very dark
    pyknotic nuclei in clear halos."""
    haze = smooth_noise(rng, size, 3)
    threads = np.abs(streaks(rng, size, rng.uniform(0, np.pi), size / 5, 2.5, warp=10))
    fibrin = _sigmoid(4 * (threads - 1.6))
    count = int(rng.integers(15, 40) * (size / 224)**2) + 2
    centres = rng.uniform(0, size, (count, 2))
    r = rng.uniform(1.8, 2.8, count)
    pyk = stamp_nuclei(size, centres, r, rng.uniform(0.8, 1.0, count), rng.uniform(0, np.pi, count),
                       rng.uniform(1.4, 1.8, count), rng, irregularity=0.05)
    halo = stamp_nuclei(size, centres, 2.4 * r, np.ones(count), np.zeros(count), np.ones(count),
                        rng, irregularity=0.2)
    e = (0.32 + 0.04 * haze + 0.12 * fibrin + 0.02 * grain(rng, size, 2.0)) * (1 - 0.8 * halo)
    h = 0.07 + 0.02 * haze + 0.05 * fibrin + pyk
    return h, e


#: Texture of every sub-morphology, in SUBMORPHOLOGIES order.
TEXTURES = (
    (st.tumour_solid, st.tumour_glandular, tumour_cords),
    (st.stroma_dense, st.stroma_loose, stroma_cellular),
    (st.lymphocyte_aggregate, lymphocyte_nodular, st.lymphocyte_scattered),
    (st.necrosis_debris, st.necrosis_ghost, necrosis_amorphous),
)

#: Shared colour statistics the look-alike matching pulls towards, per stain (h, e): (mean,
#: coarse-band std, mean over 8-px blocks of the fine band's std in the block); about the
#: average over all sub-morphologies.
SHARED_STATS = ((0.28, 0.16, 0.15), (0.25, 0.05, 0.055))


def _local_contrast(fine: np.ndarray, block: int = 8) -> float:
    """Mean over ``block``-px blocks of the std of a fine band inside the block."""
    n = fine.shape[0] // block
    x = fine[:n * block, :n * block].reshape(n, block, n, block)
    return float(x.std((1, 3)).mean())


def _borrow(own, other, own_stat, other_stat, target, strength):
    """``own`` band plus the other stain's band (scaled to the statistic's ``target``) in
    proportion to own's deficit below the target, times ``strength``."""
    deficit = strength * max(0.0, 1 - own_stat / target)
    if deficit > 0 and other_stat > 1e-6:
        return own + other * (deficit * target / other_stat)
    return own


#: Block colour features every sub-morphology is calibrated to at look-alike strength 1: the
#: mean over 8-px blocks of the block's mean R, G, B and of its std R, G, B, rendered with the
#: reference stain (H_OD, E_OD, strengths 1, white 244) and no blur or noise.
SHARED_FEATURES = np.array([155.0, 99.0, 131.0, 27.0, 24.0, 21.0])
#: The calibration measures the features on every other 8-px block in each direction (speed).
CALIBRATION_STRIDE = 2
_LN10 = np.float32(np.log(10))


def _sample_blocks(x: np.ndarray, block: int, stride: int) -> np.ndarray:
    """Every ``stride``-th ``block``-px block each way, as a contiguous float32 (n, n, b*b)."""
    n = x.shape[0] // (block * stride)
    side = n * block * stride
    x = x[:side, :side].reshape(n, block * stride, n, block * stride)[:, :block, :, :block]
    return np.ascontiguousarray(x.transpose(0, 2, 1, 3), np.float32).reshape(n, n, block * block)


def _features_of_blocks(hb: np.ndarray, eb: np.ndarray) -> np.ndarray:
    """block_colour_features of sampled blocks ((n, n, pixels) concentrations)."""
    feats = []
    for c in range(3):
        od = np.maximum(hb, 0) * np.float32(H_OD[c]) + np.maximum(eb, 0) * np.float32(E_OD[c])
        rgb = np.float32(244.0) * np.exp(-_LN10 * od)
        mean = rgb.mean(-1)
        var = np.maximum((rgb * rgb).mean(-1) - mean * mean, 0)
        feats.append((float(mean.mean()), float(np.sqrt(var).mean())))
    return np.array([f[0] for f in feats] + [f[1] for f in feats])


def block_colour_features(h: np.ndarray, e: np.ndarray, block: int = 8,
                          stride: int = CALIBRATION_STRIDE) -> np.ndarray:
    """(6,) mean over ``block``-px blocks (every ``stride``-th block each way) of the block's
    mean and std of R, G, B, rendered with the reference stain, without blur or noise."""
    return _features_of_blocks(_sample_blocks(h, block, stride), _sample_blocks(e, block, stride))


def _calibrate(h, e, fine_h, fine_e, goal, iterations: int = 3):
    """Shift the stain means, rescale the fine bands and mix them across the stains so that
    block_colour_features(h, e) reaches ``goal``; 6 parameters (h and e shifts, fine-band gains,
    fine-band cross-talk h<-e and e<-h), damped least-squares steps with one finite-difference
    Jacobian (chord method), measured on the sampled blocks only."""
    blocks = [_sample_blocks(x, 8, CALIBRATION_STRIDE) for x in (h, e, fine_h, fine_e)]

    def apply(p, x):
        f32 = np.float32
        return (x[0] + f32(p[0]) + f32(p[2]) * x[2] + f32(p[4]) * x[3],
                x[1] + f32(p[1]) + f32(p[3]) * x[3] + f32(p[5]) * x[2])

    def features(p):
        return _features_of_blocks(*apply(p, blocks))

    steps = np.array([0.01, 0.01, 0.05, 0.05, 0.05, 0.05])
    p = np.zeros(len(steps))
    f = features(p)
    jac = np.stack([(features(np.eye(len(steps))[i] * steps[i]) - f) / steps[i]
                    for i in range(len(steps))], 1)
    normal = jac.T @ jac
    normal += 1e-3 * np.eye(len(steps)) * np.trace(normal) / len(steps)
    for _ in range(iterations):
        resid = goal - f
        if np.abs(resid).max() < 0.3:
            break
        p = p + np.linalg.solve(normal, jac.T @ resid)
        p[2:] = np.clip(p[2:], -0.6, 1.5)  # gains stay in 0.4..2.5, cross-talk below 1.5
        f = features(p)
    return apply(p, (h, e, fine_h, fine_e))


def lookalike(h: np.ndarray, e: np.ndarray, strength: float, rng=None, jitter: float = 0.0):
    """Pull the colour statistics of ``h`` and ``e`` towards shared ones by ``strength``.

    1. Per stain: the mean moves linearly; the coarse band (8-px block scale) is rescaled so that
       its std, and the fine band so that its mean local std, move geometrically (0: unchanged,
       1: equal to SHARED_STATS). A band with less structure than the target first borrows the
       other stain's band in proportion to the deficit (stain cross-talk: e.g. collagen fibres
       turn a little purple), so weak bands are not amplified noise.
    2. Calibration in colour space (:func:`_calibrate`): the block colour features
       (block_colour_features: block mean and std of R, G, B) move from the texture's own by
       ``strength`` of the way to SHARED_FEATURES (the Beer-Lambert colours are not linear in
       the concentrations, so step 1 alone leaves dark, contrasted textures apart). With
       ``jitter`` > 0 the target varies per call, the same way for every class (region-to-region
       staining: mean x exp(N(0, 0.02 jitter)), contrast x exp(N(0, 0.08 jitter)) per channel).
    Shapes are kept.
    """
    if strength == 0:
        return h, e
    own = block_colour_features(h, e)
    coarse = [ndimage.gaussian_filter(x, BAND_SIGMA, mode='reflect', truncate=3.0) for x in (h, e)]
    fine = [x - c for x, c in zip((h, e), coarse)]
    means = [float(x.mean()) for x in (h, e)]
    coarse = [c - m for c, m in zip(coarse, means)]
    stats = [[float(c.std()) for c in coarse], [_local_contrast(f) for f in fine]]
    bands = [coarse, fine]
    out, out_fine = [], []
    for k in range(2):
        target = SHARED_STATS[k]
        x = means[k] + strength * (target[0] - means[k])
        for b, measure in enumerate((lambda a: float(a.std()), _local_contrast)):
            band = _borrow(bands[b][k], bands[b][1 - k], stats[b][k], stats[b][1 - k],
                           target[1 + b], strength)
            band = band * (target[1 + b] / max(measure(band), 1e-6))**strength
            x = x + band
        out.append(x)
        out_fine.append(band)
    target = SHARED_FEATURES
    if jitter > 0:  # class-independent colour variation of this region (mean and contrast)
        target = target * np.exp(np.concatenate([rng.normal(0, 0.02 * jitter, 3),
                                                 rng.normal(0, 0.08 * jitter, 3)]))
    goal = own + strength * (target - own)
    h, e = _calibrate(out[0], out[1], out_fine[0], out_fine[1], goal)
    return h.astype(np.float32), e.astype(np.float32)


# ----------------------------------------------------------------------------- slides and patches


def sample_stain(rng, variation: float) -> Stain:
    """A slide's stain, its perturbations scaled by ``variation`` (1 = version 2's ranges)."""

    def perturb(vec):
        v = np.clip(vec + rng.normal(0, 0.05 * variation, 3), 0.05, None)
        return v / np.linalg.norm(v)

    return Stain(perturb(H_OD), perturb(E_OD), float(np.exp(rng.uniform(-0.22, 0.22) * variation)),
                 float(np.exp(rng.uniform(-0.27, 0.27) * variation)),
                 np.minimum(244 + rng.uniform(-8, 8, 3) * variation, 255))


def jitter_stain(stain: Stain, rng, variation: float) -> Stain:
    """The stain of one patch of a slide: strengths varied by a third of the slide variation."""
    h, e = np.exp(rng.normal(0, 0.07 * variation, 2))
    return Stain(stain.h_od, stain.e_od, stain.h_scale * h, stain.e_scale * e, stain.white)


class SlideV3:
    """A slide region of version 3: name, stain and its preference among each class's
    sub-morphologies (a Dirichlet draw per class)."""

    def __init__(self, name: str, rng, knobs: Knobs):
        self.name = name
        self.stain = sample_stain(rng, knobs.stain_variation)
        self.preference = [rng.dirichlet(np.full(len(m), 2.0)) for m in SUBMORPHOLOGIES]


def submorphology_map(mask: np.ndarray, slide: SlideV3, knobs: Knobs, rng) -> np.ndarray:
    """Split every class region of ``mask`` among its sub-morphologies (uint8 ids, 0 = BG)."""
    size = mask.shape[0]
    sub = np.zeros(mask.shape, np.uint8)
    for c in range(NUM_TISSUE_CLASSES):
        where = mask == c
        if not where.any():
            continue
        n_sub = len(SUBMORPHOLOGIES[c])
        k = 1 + rng.binomial(n_sub - 1, knobs.heterogeneity)
        chosen = rng.choice(n_sub, k, replace=False, p=slide.preference[c])
        ids = np.array([submorphology_id(c, j) for j in chosen], np.uint8)
        if k == 1:
            sub[where] = ids[0]
            continue
        cells = size / (knobs.mix_scale * size / 224) * rng.uniform(0.8, 1.25)
        scores = np.stack([
            smooth_noise(rng, size, cells) + 0.25 * smooth_noise(rng, size, 3 * cells)
            for _ in chosen
        ])
        sub[where] = ids[np.argmax(scores, 0)][where]
    return sub


def render_v3(sub: np.ndarray, stain: Stain, knobs: Knobs, rng) -> np.ndarray:
    """RGB patch whose sub-morphology regions follow ``sub`` (borders blended over ~1 px)."""
    size = sub.shape[0]
    h = np.zeros(sub.shape, np.float32)
    e = np.zeros(sub.shape, np.float32)
    weight = np.zeros(sub.shape, np.float32)
    for value in np.unique(sub):
        if value == BACKGROUND_ID:
            th, te = st.background(rng, size)
        else:
            c = int(ID_CLASS[value])
            texture = TEXTURES[c][int(value) - submorphology_id(c, 0)]
            th, te = lookalike(*(np.asarray(t, np.float32) for t in texture(rng, size)),
                               knobs.lookalike, rng, knobs.stain_variation)
        alpha = ndimage.gaussian_filter((sub == value).astype(np.float32), 1.0)
        h += alpha * th
        e += alpha * te
        weight += alpha
    return render_rgb(h / weight, e / weight, stain, rng)


def generate_patch_v3(mask: np.ndarray, slide: SlideV3, knobs: Knobs, rng):
    """(rgb uint8 HxWx3, sub-morphology map uint8 HxW) of a patch with layout ``mask``."""
    sub = submorphology_map(mask, slide, knobs, rng)
    stain = jitter_stain(slide.stain, rng, knobs.stain_variation)
    return render_v3(sub, stain, knobs, rng), sub

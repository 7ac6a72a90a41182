"""Rendering of synthetic H&E tissue: stain model, nuclei and one texture per sub-morphology.

Each texture returns stain concentration maps (haematoxylin ``h``, eosin ``e``) for a whole
patch; :func:`render_rgb` turns them into RGB with a Beer-Lambert stain model
(``I = I0 * 10**-(h * H + e * E)``, H and E optical-density vectors). Sizes are in pixels at the
resolution of BCSS-WSSS patches (lymphocyte nuclei ~4 px radius, tumour nuclei ~5-9 px).
"""
import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Reference optical-density vectors (RGB) of haematoxylin and eosin (Macenko et al. 2009).
H_OD = np.array([0.5626, 0.7201, 0.4062])
E_OD = np.array([0.2159, 0.8012, 0.5581])

#: Sub-morphologies per tissue class (index = class id), drawn per region of a patch.
MORPHOLOGIES = (
    ('tumour_solid', 'tumour_glandular'),
    ('stroma_dense', 'stroma_loose'),
    ('lymphocyte_aggregate', 'lymphocyte_scattered'),
    ('necrosis_debris', 'necrosis_ghost'),
)
BACKGROUND_MORPHOLOGY = 'background'


@dataclass(frozen=True)
class Stain:
    """Per-slide stain appearance: OD vectors, stain strengths and illumination."""
    h_od: np.ndarray
    e_od: np.ndarray
    h_scale: float
    e_scale: float
    white: np.ndarray  # (3,) incident light I0 per RGB channel

    @classmethod
    def sample(cls, rng: np.random.Generator) -> 'Stain':
        """Draw a slide's stain: perturbed OD vectors, strengths and white level."""

        def perturb(vec):
            v = np.clip(vec + rng.normal(0, 0.05, 3), 0.05, None)
            return v / np.linalg.norm(v)

        return cls(perturb(H_OD), perturb(E_OD), rng.uniform(0.8, 1.25), rng.uniform(0.75, 1.3),
                   rng.uniform(236, 252, 3))


@functools.lru_cache(maxsize=64)
def _upsampler(size: int, n: int) -> np.ndarray:
    """(size, n) row-normalised Gaussian interpolation weights from n knots to size pixels."""
    step = size / (n - 3)
    knots = (np.arange(n) - 1.5) * step
    w = np.exp(-0.5 * ((np.arange(size)[:, None] + 0.5 - knots[None]) / (0.6 * step))**2)
    w[w < 1e-6] = 0  # no float32 denormals (they make matmul far slower)
    return (w / w.sum(1, keepdims=True)).astype(np.float32)


def smooth_noise(rng, size: int, cells: float) -> np.ndarray:
    """Zero-mean, unit-std noise varying smoothly over about ``cells`` blobs per side."""
    n = max(2, int(np.ceil(cells))) + 3
    up = _upsampler(size, n)
    # einsum, not BLAS matmul: no thread start-up per call and the same sums on every machine.
    low = np.einsum('ij,jk->ik', up, rng.standard_normal((n, n), dtype=np.float32))
    field = np.einsum('ik,jk->ij', low, up)
    return (field - field.mean()) / (field.std() + 1e-6)


def grain(rng, size: int, sigma: float) -> np.ndarray:
    """Fine granular noise (gaussian-filtered white noise), unit std."""
    g = ndimage.gaussian_filter(rng.standard_normal((size, size), dtype=np.float32), sigma)
    return g / (g.std() + 1e-8)


def streaks(rng, size: int, angle: float, length: float, thickness: float,
            warp: float = 0.0) -> np.ndarray:
    """Oriented fibre-like noise: ridges about ``thickness`` px apart, ``length`` px long,
    running along ``angle`` (radians), bent sideways by up to ~``warp`` px; unit std."""
    n_across = int(size * 1.5 / thickness) + 4
    n_along = int(size * 1.5 / length) + 4
    knots = rng.standard_normal((n_across, n_along), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - size / 2
    along = xx * np.cos(angle) + yy * np.sin(angle)
    across = -xx * np.sin(angle) + yy * np.cos(angle)
    if warp:
        across = across + warp * smooth_noise(rng, size, 2.5)
    coords = np.stack([across / thickness + n_across / 2, along / length + n_along / 2])
    s = ndimage.map_coordinates(knots, coords, order=1, mode='reflect')
    return (s - s.mean()) / (s.std() + 1e-6)


def jittered_grid(rng, size: int, spacing: float, jitter: float) -> np.ndarray:
    """Cell centres (N, 2) as (y, x) on a jittered square grid covering the patch."""
    n = int(np.ceil(size / spacing)) + 1
    yy, xx = np.meshgrid(np.arange(n), np.arange(n), indexing='ij')
    pts = np.stack([yy.ravel(), xx.ravel()], 1) * spacing - spacing / 2
    pts += rng.uniform(-jitter, jitter, pts.shape) * spacing
    return pts[(pts >= -4).all(1) & (pts < size + 4).all(1)]


def stamp_nuclei(size: int, centres, radius, aspect, angle, strength, rng, *,
                 profile: str = 'solid', irregularity: float = 0.1) -> np.ndarray:
    """Draw elliptic nuclei into a (size, size) haematoxylin density map.

    ``radius`` is the long half-axis, ``aspect`` short/long; ``profile`` is 'solid' (dense
    chromatin), 'vesicular' (dark rim, pale centre and a nucleolus) or 'ghost' (faint ring).
    Overlaps keep the darker nucleus.
    """
    out = np.zeros(size * size, np.float32)
    n = len(centres)
    if n == 0:
        return out.reshape(size, size)
    f32 = np.float32
    radius = np.broadcast_to(np.asarray(radius, f32), (n, ))
    half = int(np.ceil(radius.max() * 1.3)) + 1
    off = np.arange(-half, half + 1, dtype=f32)
    base = np.floor(centres).astype(int)
    frac = (centres - base).astype(f32)
    dy = off[None, :, None] - frac[:, 0, None, None]
    dx = off[None, None, :] - frac[:, 1, None, None]
    angle = np.broadcast_to(np.asarray(angle, f32), (n, ))
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u = dx * cos + dy * sin
    v = dy * cos - dx * sin
    a = radius[:, None, None]
    b = a * np.broadcast_to(np.asarray(aspect, f32), (n, ))[:, None, None]
    # Irregular outline: radius modulated by 2nd and 3rd angular harmonics (random phase).
    r = np.sqrt(u * u + v * v) + f32(1e-6)
    c, s = u / r, v / r
    coef = (irregularity * rng.uniform(-1, 1, (4, n, 1, 1))).astype(f32)
    wobble = 1 + coef[0] * (2 * s * c) + coef[1] * (c * c - s * s) + coef[2] * s * (
        3 - 4 * s * s) + coef[3] * c * (4 * c * c - 3)
    d = np.sqrt((u / a)**2 + (v / b)**2) / wobble
    body = 1 / (1 + np.exp(np.minimum((d - 1) * 8, 30)))
    if profile == 'vesicular':
        rim = np.exp(-((d - 0.85) / 0.18)**2)
        nuc_off = (rng.uniform(-0.3, 0.3, (2, n, 1, 1)) * a).astype(f32)
        nucleolus = np.exp(-((u - nuc_off[0])**2 + (v - nuc_off[1])**2) / (0.2 * a)**2)
        nucleolus *= rng.uniform(0.2, 0.8, (n, 1, 1)).astype(f32)
        body = body * (0.4 + 0.5 * rim + nucleolus)
    elif profile == 'ghost':
        body = np.exp(-((d - 0.9) / 0.15)**2) * 0.5
    elif profile != 'solid':
        raise ValueError(f'unknown nucleus profile {profile!r}')
    val = body * np.broadcast_to(np.asarray(strength, f32), (n, ))[:, None, None]
    yy = base[:, 0, None, None] + off.astype(int)[None, :, None]
    xx = base[:, 1, None, None] + off.astype(int)[None, None, :]
    yy, xx = np.broadcast_arrays(yy, xx)
    ok = (yy >= 0) & (yy < size) & (xx >= 0) & (xx < size) & (val > 0.01)
    np.maximum.at(out, yy[ok] * size + xx[ok], val[ok])
    return out.reshape(size, size)


def _chromatin(h_nuclei, rng, size, amount=0.25):
    """Granular chromatin texture inside nuclei."""
    return h_nuclei * (1 + amount * grain(rng, size, 0.7))


def _fibres(rng, size, angle, thickness):
    """Wavy collagen fibre density 0..1 running along ``angle``."""
    s = streaks(rng, size, angle, size / rng.uniform(3, 6), thickness, warp=thickness * 6)
    return 1 / (1 + np.exp(-2.0 * s))


def _elongated_nuclei(rng, size, count, angle, length, strength):
    """Spindle (fibroblast) nuclei aligned near ``angle``."""
    centres = rng.uniform(0, size, (count, 2))
    return stamp_nuclei(size, centres, rng.uniform(*length, count), rng.uniform(0.2, 0.35, count),
                        angle + rng.normal(0, 0.25, count), rng.uniform(*strength, count), rng,
                        irregularity=0.08)


def tumour_solid(rng, size):
    """Sheets of large pleomorphic vesicular nuclei in amphophilic cytoplasm."""
    centres = jittered_grid(rng, size, rng.uniform(13, 17), 0.3)
    n = len(centres)
    radius = np.minimum(rng.uniform(5, 8, n) * rng.lognormal(0, 0.18, n), 11)
    nuc = stamp_nuclei(size, centres, radius, rng.uniform(0.65, 1.0, n), rng.uniform(0, np.pi, n),
                       rng.uniform(0.8, 1.2, n), rng, profile='vesicular', irregularity=0.18)
    cyto = 0.28 + 0.06 * smooth_noise(rng, size, 6) + 0.05 * grain(rng, size, 1.2)
    h = 0.12 + 0.04 * grain(rng, size, 1.5) + 1.1 * _chromatin(nuc, rng, size)
    return h, cyto * (1 - 0.5 * nuc)


def tumour_glandular(rng, size):
    """Glands / cribriform nests: pale lumens lined by crowded, polarised nuclei."""
    blobs = smooth_noise(rng, size, rng.uniform(5, 9)) + 0.3 * smooth_noise(rng, size, 14)
    lumen = blobs > np.quantile(blobs, rng.uniform(0.8, 0.9))
    dist = ndimage.distance_transform_edt(~lumen)
    gy, gx = np.gradient(ndimage.gaussian_filter(dist.astype(np.float32), 2.0))
    centres = jittered_grid(rng, size, rng.uniform(10, 13), 0.25)
    cy = np.clip(centres[:, 0].astype(int), 0, size - 1)
    cx = np.clip(centres[:, 1].astype(int), 0, size - 1)
    keep = dist[cy, cx] > 3
    centres, cy, cx = centres[keep], cy[keep], cx[keep]
    n = len(centres)
    # Long axis perpendicular to the nearest lumen edge near lumens, random elsewhere.
    normal = np.arctan2(gy[cy, cx], gx[cy, cx])
    near = dist[cy, cx] < 14
    angle = np.where(near, normal, rng.uniform(0, np.pi, n))
    aspect = np.where(near, rng.uniform(0.45, 0.65, n), rng.uniform(0.7, 1.0, n))
    nuc = stamp_nuclei(size, centres, np.minimum(rng.uniform(5, 7.5, n) * rng.lognormal(0, 0.15, n), 10), aspect,
                       angle, rng.uniform(0.85, 1.2, n), rng, profile='vesicular',
                       irregularity=0.12)
    tissue = ndimage.gaussian_filter((~lumen).astype(float), 1.2)
    e = tissue * (0.3 + 0.05 * grain(rng, size, 1.2)) + (1 - tissue) * 0.03
    h = tissue * (0.12 + 0.03 * grain(rng, size, 1.5)) + 1.1 * _chromatin(nuc, rng, size)
    return h, e * (1 - 0.5 * nuc)


def stroma_dense(rng, size):
    """Dense pink collagen bundles with sparse spindle nuclei."""
    angle = rng.uniform(0, np.pi)
    fib = _fibres(rng, size, angle, rng.uniform(1.0, 1.8))
    e = 0.25 + 0.45 * fib + 0.04 * grain(rng, size, 0.8)
    nuc = _elongated_nuclei(rng, size, rng.integers(6, 16), angle, (7, 11), (0.9, 1.3))
    h = 0.04 + 0.03 * fib + 1.0 * _chromatin(nuc, rng, size, 0.15)
    return h, e * (1 - 0.4 * nuc)


def stroma_loose(rng, size):
    """Pale oedematous stroma: thin wispy fibres, clefts of empty space, few nuclei."""
    angle = rng.uniform(0, np.pi)
    fib = _fibres(rng, size, angle, rng.uniform(0.6, 1.0))
    gaps = 1 / (1 + np.exp(-3 * (smooth_noise(rng, size, 5) + 0.6)))
    e = (0.06 + 0.35 * fib**2) * gaps + 0.03 * grain(rng, size, 0.8)
    nuc = _elongated_nuclei(rng, size, rng.integers(3, 10), angle, (5, 9), (0.6, 1.0))
    h = 0.03 + 0.9 * _chromatin(nuc, rng, size, 0.15)
    return h, e * (1 - 0.4 * nuc)


def _lymphocytes(rng, size, spacing, keep):
    """Small round, dark, dense lymphocyte nuclei on a jittered grid, each kept with probability
    ``keep`` (a number, or a (size, size) map read at the nucleus centre)."""
    centres = jittered_grid(rng, size, spacing, 0.3)
    if np.ndim(keep):
        idx = np.clip(centres.astype(int), 0, size - 1)
        keep = keep[idx[:, 0], idx[:, 1]]
    centres = centres[rng.random(len(centres)) < keep]
    n = len(centres)
    return stamp_nuclei(size, centres, rng.uniform(3.2, 4.4, n), rng.uniform(0.8, 1.0, n),
                        rng.uniform(0, np.pi, n), rng.uniform(1.1, 1.45, n), rng,
                        irregularity=0.06)


def lymphocyte_aggregate(rng, size):
    """Sheets of small round dark nuclei with scant cytoplasm."""
    nuc = _lymphocytes(rng, size, rng.uniform(8, 9.5), 0.92)
    h = 0.1 + 0.03 * grain(rng, size, 1.0) + _chromatin(nuc, rng, size, 0.12)
    e = 0.16 + 0.04 * grain(rng, size, 1.0)
    return h, e * (1 - 0.6 * nuc)


def lymphocyte_scattered(rng, size):
    """Lymphocytes and plasma cells infiltrating a pale pink stroma."""
    angle = rng.uniform(0, np.pi)
    fib = _fibres(rng, size, angle, 1.0)
    density = 1 / (1 + np.exp(-2.5 * (smooth_noise(rng, size, 3) + 0.5)))
    nuc = _lymphocytes(rng, size, rng.uniform(9, 11), density)
    e = 0.12 + 0.2 * fib + 0.03 * grain(rng, size, 1.0)
    h = 0.05 + _chromatin(nuc, rng, size, 0.12)
    return h, e * (1 - 0.6 * nuc)


def _nuclear_dust(rng, size, count):
    """Karyorrhectic fragments: tiny dark dots, clustered."""
    cand = rng.uniform(0, size, (count * 3, 2))
    cluster = smooth_noise(rng, size, 6)
    w = np.exp(1.2 * cluster[cand[:, 0].astype(int), cand[:, 1].astype(int)])
    pick = rng.choice(len(cand), count, replace=False, p=w / w.sum())
    c = cand[pick]
    return stamp_nuclei(size, c, rng.uniform(0.9, 2.2, count), rng.uniform(0.5, 1.0, count),
                        rng.uniform(0, np.pi, count), rng.uniform(0.8, 1.3, count), rng,
                        irregularity=0.3)


def _ghost_cells(rng, size, spacing):
    """Faint outlines of dead nuclei with eosinophilic cell bodies (h, e increments)."""
    centres = jittered_grid(rng, size, spacing, 0.4)
    centres = centres[rng.random(len(centres)) < 0.6]
    n = len(centres)
    ghosts = stamp_nuclei(size, centres, rng.uniform(4, 7, n), rng.uniform(0.7, 1.0, n),
                          rng.uniform(0, np.pi, n), rng.uniform(0.4, 0.8, n), rng,
                          profile='ghost', irregularity=0.2)
    bodies = stamp_nuclei(size, centres, rng.uniform(8, 11, n), rng.uniform(0.7, 1.0, n),
                          rng.uniform(0, np.pi, n), rng.uniform(0.10, 0.2, n), rng,
                          irregularity=0.2)
    return ghosts, bodies


def necrosis_debris(rng, size):
    """Granular pink-purple debris ("dirty" necrosis) peppered with nuclear dust."""
    coarse = grain(rng, size, 2.0)
    fine = grain(rng, size, 0.8)
    haze = 1 / (1 + np.exp(-1.5 * smooth_noise(rng, size, 4)))
    dust = _nuclear_dust(rng, size, int(rng.integers(150, 320) * (size / 224)**2) + 5)
    e = 0.3 + 0.07 * coarse + 0.04 * fine
    h = 0.08 + 0.16 * haze + 0.05 * coarse + 1.2 * dust
    return h, e


def necrosis_ghost(rng, size):
    """Coagulative necrosis: pale eosinophilic ghost cells, little dust, cracks."""
    ghosts, bodies = _ghost_cells(rng, size, rng.uniform(14, 18))
    dust = _nuclear_dust(rng, size, int(rng.integers(30, 90) * (size / 224)**2) + 3)
    cracks = 1 / (1 + np.exp(-4 * (smooth_noise(rng, size, 7) + 1.4)))
    e = (0.2 + bodies + 0.05 * grain(rng, size, 1.5)) * cracks
    h = (0.06 + 0.5 * ghosts + 0.03 * grain(rng, size, 1.5)) * cracks + dust
    return h, e


def background(rng, size):
    """Empty glass: almost no stain."""
    return 0.01 + 0.004 * grain(rng, size, 3), 0.015 + 0.006 * grain(rng, size, 3)


TEXTURES = {
    f.__name__: f
    for f in (tumour_solid, tumour_glandular, stroma_dense, stroma_loose, lymphocyte_aggregate,
              lymphocyte_scattered, necrosis_debris, necrosis_ghost, background)
}


def render_rgb(h: np.ndarray, e: np.ndarray, stain: Stain, rng) -> np.ndarray:
    """Beer-Lambert stain model: concentrations -> uint8 RGB with optics blur and sensor noise."""
    h = np.clip(h, 0, None) * stain.h_scale
    e = np.clip(e, 0, None) * stain.e_scale
    od = h[..., None] * stain.h_od + e[..., None] * stain.e_od
    rgb = (stain.white * np.power(10.0, -od)).astype(np.float32)
    rgb = ndimage.gaussian_filter(rgb, (0.6, 0.6, 0))
    rgb += 1.5 * rng.standard_normal(rgb.shape, dtype=np.float32)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def render_patch(mask: np.ndarray, morphologies: dict, stain: Stain, rng) -> np.ndarray:
    """Render an RGB patch whose regions follow ``mask``; ``morphologies`` maps value -> texture."""
    size = mask.shape[0]
    h = np.zeros(mask.shape)
    e = np.zeros(mask.shape)
    weight = np.zeros(mask.shape)
    for value in sorted(morphologies):
        th, te = TEXTURES[morphologies[value]](rng, size)
        alpha = ndimage.gaussian_filter((mask == value).astype(float), 1.0)
        h += alpha * th
        e += alpha * te
        weight += alpha
    return render_rgb(h / weight, e / weight, stain, rng)

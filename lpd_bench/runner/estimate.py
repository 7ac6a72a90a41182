"""``lpd-bench list --estimate``: what the planned runs will cost, from ``lpd-bench bench`` figures.

Per run (its config with the run's options, as the runner trains it):

- training = iterations x the step time of the run's method from the bench (the method's case
  before the loss warm-up for the warm-up iterations, its case after the warm-up for the rest,
  when it has both);
- validation = validations x val images x the per-image time of the method's inference case at
  the run's test-time views (the runner leaves out the last validation when no best-on-val
  checkpoint can come of it: ``lpd_bench.engine.train_then_test``); test = tests (the last checkpoint, plus the best-on-val one when the
  config keeps one) x test images x the same per-image time;
- a stage-2 run: its pseudo-mask step (train + val images through the stage-1 method's inference),
  then its network's training, validation and test;
- peak memory = the largest peak of the cases used (CPU: the peak RSS of a process; CUDA:
  ``torch.cuda.max_memory_allocated``, as the bench measures it);
- total = the sum; for ``--jobs N`` a simple packing: runs in plan order, each on the slot that
  frees first, a stage-2 run not before its stage-1 run ends.

What stands behind each figure is printed beside it:

- ``case xN``: the run's method's own bench case at the run's batch and input size;
- ``~`` an approximation: the case was measured with the method's default config while the run
  overrides a knob (e.g. k=3), or at another batch (scaled per image), or another phase of the
  loss warm-up, or other test-time views (scaled per view);
- ``>=`` a lower bound: the method has no training case, but its network's backbone is the
  bench's bare-backbone case (forward + backward of the same architecture at the same batch and
  input): each of its training steps costs at least that;
- ``no figure``: nothing the bench measured fits; that part is left out of the total (named).

Not estimated (no bench case measures them): pre-stages (a prototype bank, a colour rule's fit),
post-stages, DenseCRF at test, data loading and process start-up. Image counts: counted in the
run's data root when it exists, else the synthetic default set's sizes (CPU preset) or the
release's sizes (paper preset).
"""
import csv
import glob
import json
import math
import os.path as osp
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional

#: Where ``lpd-bench bench`` writes its figures by default (measured on this machine).
DEFAULT_BENCH_CSV = 'reports/perf.csv'
#: Backbone settings that fix its cost (the bare-backbone floor needs them all equal).
BACKBONE_ARCH_KEYS = ('type', 'arch', 'in_channels', 'embed_dims', 'num_stages', 'num_layers',
                      'num_heads', 'patch_sizes', 'strides', 'sr_ratios', 'mlp_ratio', 'depth',
                      'depths')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp')
EXACT, APPROX, FLOOR = '', '~', '>='


class EstimateError(ValueError):
    """A bench CSV that cannot give figures (missing file, not a perf CSV)."""


@dataclass
class Figure:
    """One measured case at one batch and input size."""
    case: str
    batch: int
    input_size: int
    seconds: float  # median of one call (a step, or one inference batch)
    peak_mib: Optional[float]


@dataclass
class BenchFigures:
    """The figures of one preset on one device kind, from one bench CSV."""
    source: str
    preset: str
    device: str  # 'cpu' or 'cuda'
    device_name: str
    measured_at: str
    memory_method: str
    specs: Dict[str, object]  # case name -> CaseSpec (the preset's cases that have figures)
    figures: Dict[str, List[Figure]]  # case name -> its figures

    def describe(self) -> str:
        return (f'{self.source}: preset {self.preset}, device {self.device} ({self.device_name}),'
                f' measured {self.measured_at or "at an unrecorded time"}')


def _num(text) -> Optional[float]:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def device_kind(device: str) -> str:
    return 'cuda' if str(device).startswith('cuda') else 'cpu'


def current_device() -> str:
    import torch
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def load_figures(path: str, preset: str, device: Optional[str] = None,
                 strict: bool = False) -> Optional[BenchFigures]:
    """The figures of ``preset`` in bench CSV ``path`` (None when it has none): of ``device``
    ('cpu'/'cuda') when it has them, else (unless ``strict``) of the device it has (CUDA first).
    Raises EstimateError for a missing or unreadable file."""
    from ..bench.cases import preset_cases
    from ..bench.report import ENV, MEASURE, read_rows
    if not osp.isfile(path):
        raise EstimateError(f'--bench-csv {path}: no such file (a perf.csv that `lpd-bench bench` '
                            'wrote, e.g. reports/perf_cuda_h100/perf.csv)')
    try:
        rows = read_rows(path)
    except (ValueError, KeyError, UnicodeDecodeError, csv.Error) as err:
        raise EstimateError(f'--bench-csv {path}: {err}') from None
    specs = {s.name: s for s in preset_cases(preset)}
    measured = [r for r in rows if r['record'] == MEASURE and r['preset'] == preset
                and r['case'] in specs and _num(r['median_s']) is not None
                and _num(r['batch']) and _num(r['input_size'])]
    kinds = sorted({device_kind(r['device']) for r in measured}, key=lambda k: k != 'cuda')
    if device not in kinds and (strict or not kinds):
        return None
    kind = device if device in kinds else kinds[0]
    measured = [r for r in measured if device_kind(r['device']) == kind]
    settings = {(r['batch'], r['input_size']) for r in measured} | {('', '')}
    env = [r for r in rows if r['record'] == ENV and r['preset'] == preset
           and (r['batch'], r['input_size']) in settings]

    def env_value(name):
        return ', '.join(dict.fromkeys(r['detail'] for r in env
                                       if r['case'] == name and r['detail']))

    if kind == 'cuda':
        name = ', '.join(dict.fromkeys(r['detail'] for r in env if r['case'] == 'device'
                                       and r['detail'] and r['detail'] != 'cpu')) or 'GPU'
    else:
        cores = env_value('cores (os.cpu_count)')
        name = (env_value('CPU') or 'CPU') + (f', {cores} cores' if cores else '')
    figures: Dict[str, List[Figure]] = {}
    for r in measured:
        figures.setdefault(r['case'], []).append(Figure(
            r['case'], int(_num(r['batch'])), int(_num(r['input_size'])), _num(r['median_s']),
            _num(r['peak_mem_mib'])))
    methods = ', '.join(dict.fromkeys(r['memory_method'] for r in measured if r['memory_method']))
    return BenchFigures(path, preset, kind, name, env_value('measured at (UTC)'),
                        methods or 'not measured', {n: specs[n] for n in figures}, figures)


def stored_csvs(preset: str, root: str = 'reports') -> List[str]:
    """Bench CSVs under ``root`` (``perf.csv`` and ``*/perf.csv``) with figures of ``preset``,
    as 'path (device kinds)'."""
    found = []
    for path in [osp.join(root, 'perf.csv')] + sorted(glob.glob(osp.join(root, '*', 'perf.csv'))):
        kinds = []
        for kind in ('cuda', 'cpu'):
            try:
                if load_figures(path, preset, kind, strict=True) is not None:
                    kinds.append(kind)
            except EstimateError:
                break
        if kinds:
            found.append(f'{path} ({", ".join(kinds)})')
    return found


# --------------------------------------------------------------------------- the run's schedule


@dataclass
class Schedule:
    """What a run does, from its config: iterations, warm-up, validations, views, tests."""
    trained: bool
    iters: int
    warmup: int
    batch: int
    input_size: int
    validations: int
    views: int
    crf: bool
    tests: int
    images: Dict[str, int]
    images_from: str
    backbone: Optional[dict]
    test_cfg: dict = field(default_factory=dict)


def views_of(test_cfg) -> int:
    """Test-time views of a segmentor's ``test_cfg``: mmseg's (``mode``) 1, else flip x
    intensities of :class:`lpd_bench.models.inference.InferenceProtocol` (its defaults for keys
    left out)."""
    test_cfg = dict(test_cfg or {})
    if 'mode' in test_cfg:
        return 1
    from ..models.inference import InferenceProtocol
    defaults = {f.name: f.default for f in fields(InferenceProtocol)}
    flip = test_cfg.get('flip', defaults['flip'])
    intensities = test_cfg.get('intensities', defaults['intensities'])
    return (2 if flip else 1) * max(1, len(tuple(intensities or (1.0, ))))


def _count_images(folder: Path) -> int:
    folder = folder / 'img' if (folder / 'img').is_dir() else folder
    return sum(1 for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def split_images(run, cfg) -> tuple:
    """({split: images}, where the counts come from) for ``run`` with config ``cfg``."""
    root = run.data_root or cfg.get('data_root')
    images, source = None, ''
    if root and Path(root).is_dir():
        from ..data.validation import split_dir
        try:
            images = {s: _count_images(split_dir(root, s)) for s in ('train', 'val', 'test')}
            source = f'counted in {root}'
        except Exception:  # noqa: BLE001 (a data set in another layout: the defaults below)
            images = None
    if images is None and run.preset == 'cpu':
        from ..data import synthetic
        images, source = dict(synthetic.DEFAULT_SPLIT_SIZES), 'the default synthetic set'
    elif images is None:
        from ..data import bcss_meta, luad_meta
        images = dict((luad_meta if run.dataset == 'luad' else bcss_meta).RELEASE_SPLIT_SIZES)
        source = f'the {run.dataset} release'
    for split in ('val', 'test'):
        loader = cfg.get(f'{split}_dataloader') or {}
        indices = (loader.get('dataset') or {}).get('indices')
        if isinstance(indices, int):
            images[split] = min(images[split], indices)
        elif indices is not None:
            images[split] = len(indices)
    return images, source


def best_checkpoint_from(checkpoint: dict, warmup: int, interval: int) -> float:
    """First iteration whose validation can save a best-on-val checkpoint under the checkpoint
    hook config ``checkpoint`` (inf: none can; ``DelayedBestCheckpointHook``'s
    ``save_best_after``, 'warmup+interval' its default)."""
    from lpd_bench.engine.best_checkpoint import WARMUP_PLUS_INTERVAL, first_best_iter
    if not checkpoint.get('save_best'):
        return math.inf
    if checkpoint.get('type') != 'DelayedBestCheckpointHook':
        return 0
    return first_best_iter(checkpoint.get('save_best_after', WARMUP_PLUS_INTERVAL), warmup,
                           interval)


def schedule_of(run, cfg) -> Schedule:
    trained = run.stage == 2 or run.spec.checkpoint_stage is None
    train_cfg = cfg.get('train_cfg') or {}
    iters = int(train_cfg.get('max_iters') or 0) if trained else 0
    interval = train_cfg.get('val_interval')
    validations = (math.ceil(iters / interval) if iters and cfg.get('val_cfg')
                   and isinstance(interval, int) and interval > 0 else 0)
    model = cfg.get('model') or {}
    head = model.get('decode_head') or {}
    warmup = int(head.get('loss_warmup_iters') or 0) if hasattr(head, 'get') else 0
    test_cfg = model.get('test_cfg') or {}
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    if validations and iters < best_checkpoint_from(checkpoint, warmup, interval):
        validations -= 1  # the runner leaves the last one out (SkipLastValidationHook)
    tests = 2 if trained and checkpoint.get('save_best') and validations >= 2 else 1
    size = cfg.get('input_size', 224)
    images, source = split_images(run, cfg)
    return Schedule(trained, iters, min(warmup, iters), int(cfg.train_dataloader.batch_size),
                    int(size[0] if isinstance(size, (tuple, list)) else size), validations,
                    views_of(test_cfg), bool(test_cfg.get('crf', False)), tests, images, source,
                    model.get('backbone'), dict(test_cfg))


def backbone_arch(backbone) -> Optional[dict]:
    if not backbone:
        return None
    return {k: (list(v) if isinstance(v, (list, tuple)) else v)
            for k, v in backbone.items() if k in BACKBONE_ARCH_KEYS}


# --------------------------------------------------------------------------- per-run estimate


@dataclass
class Part:
    """One part of a run (train, val, test, pseudo-masks): seconds (None: no figure)."""
    name: str
    seconds: Optional[float]
    mark: str = EXACT
    basis: str = ''
    peak_mib: Optional[float] = None


@dataclass
class RunEstimate:
    run_id: str
    depends_on: Optional[str]
    parts: List[Part] = field(default_factory=list)
    images: str = ''  # where the image counts come from, with the counts

    def part(self, name) -> Optional[Part]:
        return next((p for p in self.parts if p.name == name), None)

    @property
    def seconds(self) -> float:
        """The parts with a figure (lower bounds at their bound)."""
        return sum(p.seconds for p in self.parts if p.seconds is not None)

    @property
    def missing(self) -> List[str]:
        return [p.name for p in self.parts if p.seconds is None]

    @property
    def mark(self) -> str:
        if self.missing or any(p.mark == FLOOR for p in self.parts):
            return FLOOR
        return APPROX if any(p.mark == APPROX for p in self.parts) else EXACT

    @property
    def peak_mib(self) -> Optional[float]:
        peaks = [p.peak_mib for p in self.parts if p.peak_mib is not None]
        return max(peaks) if peaks else None


def _worst(*marks) -> str:
    return FLOOR if FLOOR in marks else APPROX if APPROX in marks else EXACT


def _variant(spec) -> tuple:
    """Sort key: cases of the config as committed (no options, no AMP of their own) first."""
    return (bool(spec.cfg_options), getattr(spec, 'amp_dtype', None) is not None)


class Estimator:
    """Estimates the runs of a plan from ``figures`` (configs loaded once each)."""

    def __init__(self, figures: BenchFigures):
        self.figures = figures
        self._configs = {}

    def config(self, path, options):
        from ..apis import load_config, parse_cfg_option_values
        key = (path, json.dumps(sorted(options.items()), default=str))
        if key not in self._configs:
            self._configs[key] = load_config(path, parse_cfg_option_values(dict(options)))
        return self._configs[key]

    # ---- figures

    def figure(self, case, batch, input_size):
        """(seconds per call at ``batch``, peak, mark, note) of ``case`` at ``input_size``;
        another batch is scaled per image (approximate). None: not measured at that size."""
        figures = [f for f in self.figures.figures.get(case, ()) if f.input_size == input_size]
        exact = [f for f in figures if f.batch == batch]
        if exact:
            return exact[0].seconds, exact[0].peak_mib, EXACT, ''
        if not figures:
            return None
        nearest = max(figures, key=lambda f: f.batch)
        return (nearest.seconds * batch / nearest.batch, nearest.peak_mib, APPROX,
                f' (batch {nearest.batch} scaled to {batch})')

    def _cases(self, kind, method):
        """The method's cases of ``kind`` measured in the CSV, not those run only on request
        (speed variants such as AMP or fused attention, which no config trains with)."""
        cases = [s for s in self.figures.specs.values() if s.kind == kind and s.method == method
                 and not getattr(s, 'on_request', False)]
        return sorted(cases, key=_variant)

    # ---- training

    def train_part(self, run, schedule: Schedule) -> Part:
        from ..bench.case_spec import TRAIN_STEP
        if not schedule.trained:
            return Part('train', 0.0, basis='not trained (its pre-stage fits it: not estimated)')
        knobs = self._knobs(run) if run.stage == 1 else {}
        cases = self._cases(TRAIN_STEP, run.method) if run.stage == 1 else []
        exact = [s for s in cases if dict(s.cfg_options) == knobs]
        pool = exact or [s for s in cases if not s.cfg_options]
        options_mark = EXACT if exact else APPROX
        before = min(schedule.warmup, schedule.iters)
        phases = [(n, phase) for n, phase in ((before, 'before'),
                                               (schedule.iters - before, 'after')) if n > 0]
        seconds, peaks, marks, steps = 0.0, [], [options_mark], []
        for iters, phase in phases:
            found = self._phase_case(pool, phase, schedule)
            if found is None:
                return self._floor(run, schedule)
            spec, phase_mark, (step, peak, mark, note) = found
            seconds += iters * step
            if peak is not None:
                peaks.append(peak)
            marks += [phase_mark, mark]
            if phase_mark == APPROX:
                note += (' (its case of the other warm-up phase, for the '
                         f'{phase}-warm-up iterations)')
            if steps and steps[-1][0] == (spec.name, note):  # one case for both phases
                steps[-1][1] += iters
            else:
                steps.append([(spec.name, note), iters])
        basis = ' + '.join(f'{name} x{iters}{note}' for (name, note), iters in steps)
        if options_mark == APPROX:
            tags = run.run_id.split('__')[1:-1] or ['its options']
            basis += f' (cases of the default config, not {"/".join(tags)})'
        return Part('train', seconds, _worst(*marks), basis, max(peaks) if peaks else None)

    @staticmethod
    def _knobs(run) -> dict:
        from ..apis import CONFIG_ALIASES
        return {k: v for k, v in run.cfg_options.items()
                if k in run.spec.knob_tags and k not in CONFIG_ALIASES}

    def _phase_case(self, pool, phase, schedule):
        """(case, mark, figure) for the iterations of ``phase`` ('before'/'after' the warm-up):
        a case of that phase, else one that sets no iteration, else the other phase's (~)."""
        def phase_of(spec):
            if spec.train_iter is None or not schedule.warmup:
                return 'any'
            if spec.train_iter == 'warmup':
                return 'after'
            return 'after' if int(spec.train_iter) >= schedule.warmup else 'before'

        for wanted, mark in ((phase, EXACT), ('any', EXACT), (None, APPROX)):
            for spec in pool:
                if wanted is not None and phase_of(spec) != wanted:
                    continue
                figure = self.figure(spec.name, schedule.batch, schedule.input_size)
                if figure is not None:
                    return spec, mark, figure
        return None

    def _floor(self, run, schedule: Schedule) -> Part:
        """The bare-backbone lower bound, when the run's backbone is the case's."""
        from ..bench.case_spec import BACKBONE
        from ..bench.cases import case_config
        arch = backbone_arch(schedule.backbone)
        for spec in sorted(self.figures.specs.values(), key=_variant):
            if spec.kind != BACKBONE or arch is None:
                continue
            case_cfg = self.config(case_config(self.figures.preset, spec), {})
            if backbone_arch(case_cfg.model.get('backbone')) != arch:
                continue
            found = self.figure(spec.name, schedule.batch, schedule.input_size)
            if found is not None:
                step, peak, _, note = found
                return Part('train', schedule.iters * step, FLOOR,
                            f'{spec.name} x{schedule.iters}{note} (no training case of its own; '
                            'the bare backbone fwd+bwd is a lower bound)', peak)
        return Part('train', None, basis='no figure: no training case of its own, and no '
                    'bare-backbone case of the same backbone at this batch/input')

    # ---- inference

    def per_image(self, method, schedule: Schedule):
        """(seconds per image at ``schedule.views``, peak, mark, basis) of ``method``'s
        inference cases, or None."""
        from ..bench.case_spec import INFERENCE
        best = None
        for spec in self._cases(INFERENCE, method):
            prefix = 'model.test_cfg.'
            views = views_of(dict(schedule.test_cfg, **{
                k[len(prefix):]: v for k, v in spec.cfg_options.items() if k.startswith(prefix)}))
            figures = [f for f in self.figures.figures.get(spec.name, ())
                       if f.input_size == schedule.input_size]
            if not figures:
                continue
            fig = figures[0]
            candidate = (views != schedule.views, -views, spec, views, fig)
            if best is None or candidate[:2] < best[:2]:
                best = candidate
        if best is None:
            return None
        _, _, spec, views, fig = best
        seconds = fig.seconds / fig.batch * schedule.views / views
        mark = EXACT if views == schedule.views else APPROX
        basis = spec.name + ('' if views == schedule.views else
                             f' ({views} views scaled to {schedule.views})')
        return seconds, fig.peak_mib, mark, basis

    def inference_part(self, name, count, method, schedule, what) -> Part:
        if count == 0:
            return Part(name, 0.0, basis='none')
        found = self.per_image(method, schedule)
        if found is None:
            return Part(name, None, basis=f'no figure: no inference case of {method} at input '
                        f'{schedule.input_size}')
        seconds, peak, mark, basis = found
        return Part(name, count * seconds, mark, f'{what} x {basis}', peak)

    def estimate(self, run, by_id) -> RunEstimate:
        cfg = self.config(run.config, run.cfg_options)
        schedule = schedule_of(run, cfg)
        estimate = RunEstimate(run.run_id, run.depends_on)
        estimate.images = (f'{schedule.images_from} (' + ', '.join(
            f'{split} {n}' for split, n in schedule.images.items()) + ')')
        images = schedule.images
        if run.stage == 2:
            source = by_id.get(run.depends_on)
            if source is None:
                estimate.parts.append(Part('pseudo-masks', None, basis='no figure: stage 1 '
                                           'not in the plan'))
            else:
                src = schedule_of(source, self.config(source.config, source.cfg_options))
                count = images['train'] + images['val']
                estimate.parts.append(self.inference_part(
                    'pseudo-masks', count, source.method, src,
                    f'{count} images x {src.views} views'))
        estimate.parts.append(self.train_part(run, schedule))
        if run.stage == 2:  # its network has no bench case of its own
            for name, count in (('val', schedule.validations * images['val']),
                                ('test', schedule.tests * images['test'])):
                estimate.parts.append(Part(name, 0.0 if count == 0 else None,
                                           basis='no figure: no case of the stage-2 network'))
            return estimate
        val = schedule.validations * images['val']
        estimate.parts.append(self.inference_part(
            'val', val, run.method, schedule,
            f'{schedule.validations} x {images["val"]} images x {schedule.views} views'))
        test = schedule.tests * images['test']
        part = self.inference_part('test', test, run.method, schedule,
                                   f'{schedule.tests} x {images["test"]} images x '
                                   f'{schedule.views} views')
        if schedule.crf and part.seconds:
            part.basis += ' (DenseCRF not included)'
            part.mark = _worst(part.mark, FLOOR)
        estimate.parts.append(part)
        return estimate


def estimate_plan(plan, figures: BenchFigures) -> List[RunEstimate]:
    estimator = Estimator(figures)
    by_id = {run.run_id: run for run in plan}
    return [estimator.estimate(run, by_id) for run in plan]


def pack(estimates: List[RunEstimate], jobs: int) -> float:
    """Wall seconds of the runs ``jobs`` at a time: in plan order, each on the slot that frees
    first, a run not before the run it depends on has ended."""
    slots, ends = [0.0] * max(1, jobs), {}
    for e in estimates:
        i = min(range(len(slots)), key=slots.__getitem__)
        start = max(slots[i], ends.get(e.depends_on, 0.0))
        slots[i] = ends[e.run_id] = start + e.seconds
    return max(slots) if estimates else 0.0


# --------------------------------------------------------------------------- printing


def fmt_seconds(seconds: Optional[float], mark: str = EXACT) -> str:
    if seconds is None:
        return 'no figure'
    if seconds < 120:
        text = f'{seconds:.1f} s'
    elif seconds < 7200:
        text = f'{seconds / 60:.1f} min'
    else:
        text = f'{seconds / 3600:.2f} h'
    return mark + text


COLUMNS = ('pseudo-masks', 'train', 'val', 'test')


def format_estimate(estimates: List[RunEstimate], figures: BenchFigures, jobs: int = 1) -> str:
    unit = 'GPU' if figures.device == 'cuda' else 'CPU'
    lines = [f'estimate from {figures.describe()}',
             f'peak memory: {figures.memory_method}; ~ approximate, >= lower bound '
             '(see the basis), no figure: left out of the total',
             'images: ' + '; '.join(dict.fromkeys(e.images for e in estimates)),
             f'{"run":34s} ' + ' '.join(f'{c:>12s}' for c in COLUMNS + ('total', ))
             + f' {"peak MiB":>10s}  basis']
    if figures.device == 'cuda':
        lines.insert(2, 'training cases are timed as declared (those of the committed configs '
                     'without the AMP optimiser wrapper a config may use on CUDA)')
    for e in estimates:
        parts = {p.name: p for p in e.parts}
        cells = [fmt_seconds(parts[n].seconds, parts[n].mark) if n in parts else '-'
                 for n in COLUMNS]
        cells.append(fmt_seconds(e.seconds if len(e.missing) < len(e.parts) else None, e.mark))
        peak = '-' if e.peak_mib is None else f'{e.mark}{e.peak_mib:.0f}'
        basis = '; '.join(f'{p.name}: {p.basis}' for p in e.parts if p.basis != 'none')
        lines.append(f'{e.run_id:34s} ' + ' '.join(f'{c:>12s}' for c in cells)
                     + f' {peak:>10s}  {basis}')
    lines += summary_lines(estimates, figures, jobs, unit)
    return '\n'.join(lines)


def summary_lines(estimates, figures, jobs, unit) -> List[str]:
    total = sum(e.seconds for e in estimates)
    floors = sum(p.seconds for e in estimates for p in e.parts
                 if p.mark == FLOOR and p.seconds is not None)
    missing: Dict[str, List[str]] = {}
    for e in estimates:
        for name in e.missing:
            missing.setdefault(name, []).append(e.run_id)
    bound = _worst(*(e.mark for e in estimates))
    lines = [f'total, one run at a time: {bound}{total / 3600:.2f} {unit}-hours '
             f'({total:.0f} s) for {len(estimates)} runs'
             + (f'; {floors / 3600:.2f} h of it from lower bounds' if floors else '')]
    if jobs > 1:
        peaks = sorted((e.peak_mib for e in estimates if e.peak_mib is not None), reverse=True)
        lines.append(f'with --jobs {jobs}: {fmt_seconds(pack(estimates, jobs), bound)} wall '
                     '(simple packing: plan order, each run on the slot that frees first, stage 2 '
                     'after its stage 1)'
                     + (f'; the {jobs} largest peaks together: {sum(peaks[:jobs]):.0f} MiB'
                        if peaks else ''))
    for name, runs in missing.items():
        lines.append(f'no figure for {name} of {len(runs)} runs (left out): '
                     + ', '.join(runs))
    lines.append('not estimated: pre-stages (prototype banks, a colour rule\'s fit), post-stages, '
                 'DenseCRF at test, data loading, process start-up')
    return lines


def no_figures_message(preset: str, device: str, source: str, stored_csv: bool = False) -> str:
    """Why there is no estimate, and how to get figures."""
    others = [s for s in stored_csvs(preset) if not s.startswith(source + ' ')]
    hint = (f'; stored figures of preset {preset}: {", ".join(others)} (pass one with '
            '--bench-csv)' if others else '')
    gpu = ' --device cuda' if device == 'cuda' else ''
    where = '' if stored_csv else f' on this device ({device})'
    return (f'no estimate: no bench figures for preset {preset}{where} in {source}; measure '
            f'them with `lpd-bench bench --preset {preset}{gpu}`{hint}')


def print_estimate(plan, preset: str, bench_csv: Optional[str] = None, jobs: int = 1) -> int:
    """The estimate of ``plan`` from ``bench_csv`` (None: this device's figures in
    :data:`DEFAULT_BENCH_CSV`); prints how to get figures when there are none."""
    device = current_device()
    try:
        if bench_csv is not None:
            figures = load_figures(bench_csv, preset, device)
        elif osp.isfile(DEFAULT_BENCH_CSV):
            figures = load_figures(DEFAULT_BENCH_CSV, preset, device, strict=True)
        else:
            figures = None
    except EstimateError as err:
        raise SystemExit(str(err))
    if figures is None:
        print(no_figures_message(preset, device, bench_csv or DEFAULT_BENCH_CSV,
                                 stored_csv=bench_csv is not None))
        return 0
    print(format_estimate(estimate_plan(plan, figures), figures, jobs))
    return 0

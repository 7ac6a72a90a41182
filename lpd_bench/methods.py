"""The method registry: every method the runner, the report and the bench know, and nothing else.

A method declares itself in its own folder with a :class:`MethodSpec` passed to
:func:`register_method` (LPD in ``lpd_bench/models/spec.py``, each baseline in
``baselines/<name>/spec.py``). The spec says everything the shared code needs: the label of its
table rows, its config for each preset and data set, the values of the ablation knobs in those
configs (so that an ablation point equal to the default is the default run), the ablation
points it adds to each group, its check groups (planted controls of the benchmark itself, e.g.
LPD's ``power``: planned by name, never by ``--all``), the stages it needs before training (e.g.
PBIP's prototype bank) or after testing, and its benchmark cases. ``lpd_bench.runner``,
``lpd_bench.report`` and ``lpd_bench.bench`` iterate over :func:`registered_methods` and never
name a method.

Discovery: :func:`registered_methods` imports ``lpd_bench.models.spec`` and the ``spec`` module of
every package under ``baselines/`` (found on disk), so a new baseline folder with a ``spec.py``
is picked up without editing any other file.
"""
import hashlib
import importlib
import json
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

#: Presets of the runner and the bench: ``cpu`` (embedded synthetic data), ``paper`` (the real
#: data set's paper setting).
PRESETS = ('cpu', 'paper')
#: Data sets a method can have configs for (the keys of ``lpd_bench.data.layouts.LAYOUTS``):
#: ``bcss`` (BCSS-WSSS, the default) and ``luad`` (LUAD-HistoSeg).
DATASETS = ('bcss', 'luad')
DEFAULT_DATASET = 'bcss'
#: A key of ``MethodSpec.configs``: a preset (meaning BCSS-WSSS) or (data set, preset).
ConfigKey = Union[str, Tuple[str, str]]
#: Suffix of the runner's marker of a built stage output (``<folder>/<key>.json``).
MARKER_SUFFIX = '.json'
#: The group of each method's default run (the main table).
MAIN_GROUP = 'main'


@dataclass(frozen=True)
class AblationPoint:
    """One row of an ablation: ``method`` with ``overrides`` is what ``group`` calls ``value``."""
    group: str
    value: object
    method: str
    overrides: tuple = ()  # ((cfg key, value), ...)


@dataclass(frozen=True)
class ExtraStage:
    """A stage a method's runs need besides training and testing, run as a subprocess.

    The command line is ``python *command CONFIG --out OUTPUT --seed SEED [--checkpoint CKPT]
    *args(run) [--cfg-options <the run's options>]``, run in the repository root; a post-stage
    gets ``--checkpoint`` (the run's last checkpoint) and the options training used. ``OUTPUT``
    is a file in ``<work_dir>/<folder>/`` named by :meth:`key`: runs whose key is equal share one output
    (built once, by the first run that needs it; the others wait). A pre-stage's output path
    is passed to training and testing as ``--cfg-options <config_key>=OUTPUT``. The command may
    write ``OUTPUT.cost.json`` (its own cost record), kept in the run's result.

    Args:
        name: stage name in the result's ``cost.stages`` and in the progress display.
        command: argv after the Python interpreter (e.g. ``('-m', 'baselines.pbip.build_bank')``).
        folder: sub-folder of the work dir holding the outputs (shared between runs).
        suffix: file name suffix of the output (not ``.json`` or ``.log``: the runner's marker
            and log of the stage sit beside it as ``<key>.json`` and ``<key>.log``).
        config_key: the config key the output fills (pre-stages; None: the output is not passed).
        args: run -> extra command-line arguments (e.g. the run's k).
        stand_in: ``(cfg, path)`` -> writes a cheap stand-in output (e.g. a random bank) so
            that the bench can time a training step without running the stage.
        when: run -> bool; the stage is skipped for runs where it is False (e.g. a measurement
            that needs data only the synthetic generator writes). None: always.
        in_test: a post-stage's function ``"module:attr"`` that does the same work on the model
            ``tools/test.py`` has just tested, in the test process (``--after-test``,
            :mod:`lpd_bench.engine.after_test`), called as ``function(model, cfg, OUTPUT,
            args(run))``: the runner uses it whenever it tests the run, and the command only
            when the test is already done or the in-process task failed. None: always the
            command.
    """
    name: str
    command: Tuple[str, ...]
    folder: str
    suffix: str = '.pth'
    config_key: Optional[str] = None
    args: Optional[Callable] = None
    stand_in: Optional[Callable] = None
    when: Optional[Callable] = None
    in_test: Optional[str] = None

    def __post_init__(self):
        if self.suffix in (MARKER_SUFFIX, '.log'):
            raise ValueError(f'stage {self.name!r}: suffix {self.suffix!r} would name the output '
                             f'like the stage\'s own marker or log (<key>{MARKER_SUFFIX}, '
                             '<key>.log) in the same folder; use e.g. ".out.json"')

    def applies(self, run) -> bool:
        return self.when is None or bool(self.when(run))

    def key(self, run) -> str:
        """Name of the output of ``run``: one per method, config + options, and seed."""
        ident = json.dumps([run.config, sorted(run.cfg_options.items()), run.seed], default=str)
        digest = hashlib.sha1(ident.encode()).hexdigest()[:8]
        return f'{run.method}_{self.name}_seed{run.seed}_{digest}'

    def extra_args(self, run) -> list:
        return [] if self.args is None else list(self.args(run))


@dataclass(frozen=True)
class MethodSpec:
    """What the runner, the report and the bench know of a method.

    Args:
        name: the method's id (run ids, ``lpd-bench run NAME``, result.json ``method``).
        label: its row label in tables; ``short_label`` in figures (default: ``label`` up to
            the first " (").
        configs: preset -> config file (BCSS-WSSS), relative to the repository root; a key
            ``(dataset, preset)`` names the config of another data set of :data:`DATASETS`
            (``('luad', 'cpu')``); ``('bcss', preset)`` is the same as ``preset``. A method
            without a config for a (data set, preset) is left out of that plan
            (:meth:`has_config`).
        defaults: values of the ablation knobs (config keys) in its configs.
        ablations: the ablation groups this method owns, in report order: group -> ((value,
            ((cfg key, value), ...)), ...).
        joins: points this method adds to groups another method owns, same form (e.g. PBIP's
            clustered bank in LPD's prototype-source comparison); they follow the owner's points.
        checks: check groups this method owns, same form as ``ablations``: controls of the
            benchmark rather than of the method (e.g. LPD's ``power``: known-worse variants the
            statistics must detect). ``lpd-bench run GROUP`` plans one by name like an ablation
            group, but ``--all`` leaves it out and the ablation table does not list it (the
            report's ``power.md`` does); the group's default is its point whose overrides are
            the method's defaults (e.g. no overrides: the default run, shared with the main run).
        knob_tags: config key -> function(value) -> run-id fragment, for every knob its points
            set (``None`` when the value gives no fragment: then the point cannot be planned).
        pre_stages, post_stages: :class:`ExtraStage` run before training / after testing.
        bench_cases: preset -> tuple of ``lpd_bench.bench.cases.CaseSpec``.
        order: position in tables and figures (ascending; ties: registration order).
        group_titles: title of each ablation (or check) group it owns, in the report's tables.
        setting_notes: (group, value) -> the text shown for that setting in the ablation table
            (for a value that needs a word of explanation).
        readme: the method's README (its results table), relative to the repository root.
        checkpoint_stage: name of a pre-stage whose output is the checkpoint to test: the method
            is not trained (a reference that is fitted, not trained, e.g. a colour rule);
            None (default): ``tools/train.py`` trains it.
        stage2: whether its main runs get a second-stage run (pseudo-masks on train, an
            ordinary segmentation network trained on them, tested with no labels:
            :mod:`lpd_bench.stage2.runs`); its model must then be a
            ``WeaklySupervisedSegmentor``. None (default): the methods that are trained.
    """
    name: str
    label: str
    configs: Mapping[ConfigKey, str]
    defaults: Mapping[str, object] = field(default_factory=dict)
    ablations: Mapping[str, tuple] = field(default_factory=dict)
    joins: Mapping[str, tuple] = field(default_factory=dict)
    checks: Mapping[str, tuple] = field(default_factory=dict)
    knob_tags: Mapping[str, Callable] = field(default_factory=dict)
    pre_stages: Tuple[ExtraStage, ...] = ()
    post_stages: Tuple[ExtraStage, ...] = ()
    bench_cases: Mapping[str, tuple] = field(default_factory=dict)
    order: int = 50
    short_label: Optional[str] = None
    group_titles: Mapping[str, str] = field(default_factory=dict)
    setting_notes: Mapping[tuple, str] = field(default_factory=dict)
    readme: Optional[str] = None
    checkpoint_stage: Optional[str] = None
    stage2: Optional[bool] = None

    @property
    def has_stage2(self) -> bool:
        """Whether its main runs get a second-stage run (``stage2``, default: if trained)."""
        return self.checkpoint_stage is None if self.stage2 is None else self.stage2

    def __post_init__(self):
        unknown = [key for key in self.configs if not _valid_config_key(key)]
        if unknown:
            raise ValueError(f'method {self.name!r}: unknown config keys {unknown}; expected a '
                             f'preset of {PRESETS} or (dataset, preset) with a dataset of '
                             f'{DATASETS}')
        keys = [config_key(key) for key in self.configs]
        if len(set(keys)) < len(keys):
            raise ValueError(f'method {self.name!r}: a preset is given twice for BCSS-WSSS '
                             f'(as "preset" and as ("bcss", preset)): {list(self.configs)}')
        if self.short_label is None:
            object.__setattr__(self, 'short_label', self.label.split(' (')[0])
        if self.checkpoint_stage is not None and self.checkpoint_stage not in {
                stage.name for stage in self.pre_stages}:
            raise ValueError(f'method {self.name!r}: checkpoint_stage {self.checkpoint_stage!r} '
                             'is not one of its pre_stages')

    def config_files(self) -> Dict[Tuple[str, str], str]:
        """(dataset, preset) -> config file, every config of the method."""
        return {config_key(key): path for key, path in self.configs.items()}

    def has_config(self, preset: str, dataset: str = DEFAULT_DATASET) -> bool:
        return (dataset, preset) in self.config_files()

    def config(self, preset: str, dataset: str = DEFAULT_DATASET) -> str:
        if preset not in PRESETS:
            raise ValueError(f'unknown preset {preset!r}; expected one of {list(PRESETS)}')
        if dataset not in DATASETS:
            raise ValueError(f'unknown dataset {dataset!r}; expected one of {list(DATASETS)}')
        files = self.config_files()
        if (dataset, preset) not in files:
            raise ValueError(f'method {self.name!r} has no config for dataset {dataset!r}, '
                             f'preset {preset!r} (it has: {sorted(files)})')
        return files[dataset, preset]

    def points(self, joined: bool = False, checks: bool = False) -> Dict[str, tuple]:
        """group -> this method's :class:`AblationPoint` tuple, of the ablation groups it owns
        (or, with ``joined``, of those it joins; with ``checks``, of its check groups)."""
        rows_by_group = self.checks if checks else self.joins if joined else self.ablations
        return {group: tuple(AblationPoint(group, value, self.name, tuple(overrides))
                             for value, overrides in rows)
                for group, rows in rows_by_group.items()}

    def tag(self, key, value) -> str:
        """Run-id fragment of the override ``key=value``."""
        tagger = self.knob_tags.get(key)
        fragment = None if tagger is None else tagger(value)
        if fragment is None:
            raise ValueError(f'method {self.name!r} has no run-id tag for override {key}={value!r} '
                             '(add it to its spec\'s knob_tags)')
        return fragment


def _valid_config_key(key) -> bool:
    if isinstance(key, str):
        return key in PRESETS
    return (isinstance(key, tuple) and len(key) == 2 and key[0] in DATASETS
            and key[1] in PRESETS)


def config_key(key: ConfigKey) -> Tuple[str, str]:
    """``(dataset, preset)`` of a ``MethodSpec.configs`` key (a bare preset is BCSS-WSSS's)."""
    return (DEFAULT_DATASET, key) if isinstance(key, str) else tuple(key)


_METHODS: Dict[str, MethodSpec] = {}
_discovered = False


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry (called at import by each method's spec module)."""
    existing = _METHODS.get(spec.name)
    if existing is not None and existing != spec:
        raise ValueError(f'method {spec.name!r} is registered twice, with different specs')
    _METHODS[spec.name] = spec
    return spec


def unregister_method(name: str) -> None:
    """Remove a method (tests register throw-away methods)."""
    _METHODS.pop(name, None)


def discover() -> None:
    """Import every method's spec module (once): LPD's and each ``baselines/<pkg>/spec.py``."""
    global _discovered
    if _discovered:
        return
    importlib.import_module('lpd_bench.models.spec')
    import baselines
    for info in pkgutil.iter_modules(baselines.__path__):
        if info.ispkg and importlib.util.find_spec(f'baselines.{info.name}.spec') is not None:
            importlib.import_module(f'baselines.{info.name}.spec')
    _discovered = True


def registered_methods() -> Tuple[MethodSpec, ...]:
    """Every registered method, in table order."""
    discover()
    ranked = sorted(enumerate(_METHODS.values()), key=lambda pair: (pair[1].order, pair[0]))
    return tuple(spec for _, spec in ranked)


def method_names() -> Tuple[str, ...]:
    return tuple(spec.name for spec in registered_methods())


def get_method(name: str) -> MethodSpec:
    discover()
    if name not in _METHODS:
        raise KeyError(f'unknown method {name!r}; registered: {", ".join(method_names())}')
    return _METHODS[name]


def ablation_groups() -> Dict[str, tuple]:
    """group -> its points: the owner's, then those of the methods joining it (table order).
    Groups are in the owners' table order, each owner's in its declaration order."""
    groups: Dict[str, list] = {}
    for spec in registered_methods():
        for group, points in spec.points().items():
            if group in groups:
                raise ValueError(f'ablation group {group!r} is owned by two methods '
                                 f'({groups[group][0].method!r} and {spec.name!r})')
            groups[group] = list(points)
    for spec in registered_methods():
        for group, points in spec.points(joined=True).items():
            if group not in groups:
                raise ValueError(f'method {spec.name!r} joins ablation group {group!r}, which no '
                                 f'method owns (owned: {", ".join(groups) or "none"})')
            groups[group].extend(points)
    return {group: tuple(points) for group, points in groups.items()}


def check_groups() -> Dict[str, tuple]:
    """Check group -> its points (the owner's ``checks``; owners in table order). A check group
    is planned by name only (not by ``--all``); its name may be neither a method's nor an
    ablation group's."""
    taken = set(method_names()) | set(ablation_groups())
    groups: Dict[str, tuple] = {}
    for spec in registered_methods():
        for group, points in spec.points(checks=True).items():
            if group in groups or group in taken:
                raise ValueError(f'check group {group!r} of method {spec.name!r} has the name of '
                                 'another group or method')
            groups[group] = points
    return groups


def group_default(points) -> object:
    """The value of a group's default point: the owner's point whose overrides are the owner's
    config defaults (e.g. k = 10 for LPD, or no overrides at all), else the group's first."""
    owner = points[0].method
    spec_defaults = get_method(owner).defaults
    matching = [p for p in points if p.method == owner and all(
        key in spec_defaults and spec_defaults[key] == value for key, value in p.overrides)]
    return (matching or points)[0].value


def method_labels() -> Dict[str, str]:
    return {spec.name: spec.label for spec in registered_methods()}


def group_titles() -> Dict[str, str]:
    """Ablation or check group -> its title (the owner's ``group_titles``, else the group
    name)."""
    titles = {}
    for spec in registered_methods():
        for group in (*spec.ablations, *spec.checks):
            titles[group] = spec.group_titles.get(group, group)
    return titles


def setting_notes() -> Dict[tuple, str]:
    """(group, str(value)) -> the setting text of every method's ``setting_notes``."""
    notes = {}
    for spec in registered_methods():
        notes.update({(group, str(value)): text
                      for (group, value), text in spec.setting_notes.items()})
    return notes


def pre_stage_names() -> Tuple[str, ...]:
    """Names of every method's pre-stages (distinct, in table order): the cost table's columns."""
    names = [stage.name for spec in registered_methods() for stage in spec.pre_stages]
    return tuple(dict.fromkeys(names))

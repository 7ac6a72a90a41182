"""The data set a work dir's results were measured on (BCSS-WSSS or LUAD-HistoSeg): its layout,
whose class names head the per-class columns and whose palette colours the figures.

A result says its data set in ``dataset`` (a key of :data:`lpd_bench.data.layouts.LAYOUTS`,
written by the runner); a result written before LUAD-HistoSeg existed has none and is told by
the class names of its metric JSON (``metrics.classes``), else it is BCSS-WSSS's. One report
covers one data set: results of two are an error (``lpd-bench run --dataset`` gives each its own
default work dir).
"""
from typing import Optional, Sequence

from ..data.layouts import DEFAULT_LAYOUT, LAYOUTS, DatasetLayout


class MixedDatasetsError(ValueError):
    """The results come from more than one data set."""


def result_layout(result: dict) -> DatasetLayout:
    """The layout of one stored result (module docstring)."""
    key = result.get('dataset')
    if key is not None:
        if key not in LAYOUTS:
            raise ValueError(f'result {result.get("run_id")!r}: unknown dataset {key!r}; '
                             f'expected one of {list(LAYOUTS)}')
        return LAYOUTS[key]
    classes = tuple((result.get('metrics') or {}).get('classes') or ())
    return next((layout for layout in LAYOUTS.values() if layout.classes == classes),
                DEFAULT_LAYOUT)


def results_layout(results: Sequence[dict]) -> DatasetLayout:
    """The one layout of all ``results`` (BCSS-WSSS's for none).

    Raises:
        MixedDatasetsError: the results come from several data sets (names a run of each).
    """
    found = {}
    for result in results:
        found.setdefault(result_layout(result).key, result.get('run_id'))
    if len(found) > 1:
        examples = ', '.join(f'{LAYOUTS[k].title} (e.g. {run})' for k, run in found.items())
        raise MixedDatasetsError(f'results come from different data sets: {examples}; report '
                                 'each work dir separately (lpd-bench run --dataset gives each '
                                 'data set its own default work dir)')
    return LAYOUTS[next(iter(found))] if found else DEFAULT_LAYOUT


def class_names(results: Sequence[dict], layout: Optional[DatasetLayout] = None) -> tuple:
    """The 5 class names of the per-class columns (4 tissues, then the background), those of
    ``results``' data set (``layout`` when given)."""
    return (layout or results_layout(results)).classes

"""`lpd-bench report` of a LUAD-HistoSeg work dir: per-class columns named TE, NEC, LYM, TAS, BG,
the data set named in the captions, no BCSS-WSSS published table or method READMEs, its own
default output folder; a work dir mixing data sets is refused.

The LUAD-HistoSeg work dir is tests/fixtures/results with every result relabelled: ``dataset``
'luad' and the metric JSONs' class names TUM, STR, LYM, NEC, BG renamed TE, NEC, LYM, TAS, BG
(the same numbers under LUAD-HistoSeg's names, by position).
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lpd_bench.data.bcss_meta import ALL_CLASSES as BCSS_CLASSES
from lpd_bench.data.layouts import BCSS, LUAD
from lpd_bench.report import figures
from lpd_bench.report.build import ReportError, build_report
from lpd_bench.report.commands import default_out
from lpd_bench.report.dataset import class_names, result_layout, results_layout
from lpd_bench.report.tables import frame_scores, scores_frame
from lpd_bench.runner.results import iter_results

FIXTURE = Path(__file__).parent / 'fixtures' / 'results'
#: BCSS-WSSS class name -> the LUAD-HistoSeg one at the same index.
RENAME = dict(zip(BCSS.classes, LUAD.classes))
#: Method READMEs the report would fill from BCSS-WSSS results (markers of method_readmes.py).
README_TEXT = ('# cam\n<!-- lpd-bench report: results (generated, do not edit) -->\nold\n'
               '<!-- lpd-bench report: end of results -->\n')


def relabel(value):
    """``value`` with every class-name key and the ``classes`` list in LUAD-HistoSeg's names."""
    if isinstance(value, dict):
        renamed = {RENAME.get(k, k) if k in BCSS.classes else k: relabel(v)
                   for k, v in value.items()}
        if isinstance(renamed.get('classes'), list):
            renamed['classes'] = [RENAME[c] for c in renamed['classes']]
        return renamed
    if isinstance(value, list):
        return [relabel(v) for v in value]
    return value


def copy_work_dir(target, luad=False):
    shutil.copytree(FIXTURE / 'work_dir', target)
    for path in target.glob('runs/*/result.json'):
        result = json.loads(path.read_text().replace('@DATA@', str(FIXTURE / 'data')))
        if luad:
            result = {**relabel(result), 'dataset': 'luad'}
        path.write_text(json.dumps(result))
    return target


@pytest.fixture
def work_dirs(tmp_path):
    return (copy_work_dir(tmp_path / 'bcss'), copy_work_dir(tmp_path / 'luad', luad=True))


def test_relabelled_fixture_names_luad_classes(work_dirs):
    results = iter_results(work_dirs[1])
    metrics = results[0]['metrics']
    assert metrics['classes'] == ['TE', 'NEC', 'LYM', 'TAS', 'BG']
    assert list(metrics['results']['oracle']['bg_counted']['IoU']) == list(LUAD.classes)
    assert results_layout(results) is LUAD and class_names(results) == LUAD.classes
    assert results_layout(iter_results(work_dirs[0])) is BCSS


def test_results_without_dataset_are_told_by_their_class_names(work_dirs):
    luad = iter_results(work_dirs[1])[0]
    del luad['dataset']
    assert result_layout(luad) is LUAD
    bcss = iter_results(work_dirs[0])[0]
    assert 'dataset' not in bcss and result_layout(bcss) is BCSS
    del bcss['metrics']['classes']  # the oldest results: BCSS-WSSS
    assert result_layout(bcss) is BCSS
    with pytest.raises(ValueError, match="unknown dataset 'lung'"):
        result_layout({**luad, 'dataset': 'lung'})


def test_frame_columns_follow_the_dataset(work_dirs):
    frame = scores_frame(iter_results(work_dirs[1]))
    assert frame_scores(frame) == ('TE', 'NEC', 'LYM', 'TAS', 'BG', 'mIoU', 'mDice', 'FwIoU',
                                   'FwIoU_tissue')
    bcss = scores_frame(iter_results(work_dirs[0]))
    assert frame_scores(bcss)[:5] == BCSS_CLASSES
    # the same numbers by position, under the other names
    assert np.allclose(frame[list(LUAD.classes)].to_numpy(), bcss[list(BCSS.classes)].to_numpy(),
                       equal_nan=True)
    assert frame['TE'].notna().any() and frame['TAS'].notna().any()


def test_luad_report_tables_have_luad_columns_and_bcss_numbers(work_dirs, tmp_path):
    build_report(work_dirs[0], tmp_path / 'bcss_out')
    build_report(work_dirs[1], tmp_path / 'luad_out')
    bcss = pd.read_csv(tmp_path / 'bcss_out' / 'main_results.csv')
    luad = pd.read_csv(tmp_path / 'luad_out' / 'main_results.csv')
    renamed = {f'{old}_{stat}': f'{new}_{stat}' for old, new in RENAME.items()
               for stat in ('mean', 'std')}
    assert list(luad.columns) == [renamed.get(c, c) for c in bcss.columns]
    pd.testing.assert_frame_equal(luad, bcss.rename(columns=renamed))
    table = (tmp_path / 'luad_out' / 'main_results.md').read_text()
    header = next(line for line in table.splitlines() if line.startswith('| Gating'))
    cells = [cell.strip() for cell in header.strip('|').split('|')]
    assert cells[4:9] == ['TE', 'NEC', 'LYM', 'TAS', 'BG']
    assert 'TUM' not in table and 'STR' not in table
    assert 'not LUAD-HistoSeg numbers' in table
    first = next(line for line in table.splitlines() if line.startswith('| oracle'))
    assert first.split('|')[5].strip() not in ('', '-')  # the TE column holds numbers


def test_luad_report_names_its_dataset_and_leaves_bcss_files_alone(work_dirs, tmp_path):
    root = tmp_path / 'repo'
    (root / 'baselines' / 'cam').mkdir(parents=True)
    (root / 'baselines' / 'cam' / 'README.md').write_text(README_TEXT)
    written = build_report(work_dirs[1], tmp_path / 'out', method_readmes_root=root)
    assert (root / 'baselines' / 'cam' / 'README.md').read_text() == README_TEXT
    assert root / 'baselines' / 'cam' / 'README.md' not in written
    names = {p.name for p in (tmp_path / 'out').iterdir()}
    assert 'published.md' not in names and 'main_results.md' in names
    readme = (tmp_path / 'out' / 'README.md').read_text()
    assert ('- Data set: LUAD-HistoSeg (`lpd-bench run --dataset luad`), classes TE, NEC, LYM, '
            'TAS (+ BG).') in readme
    assert 'Synthetic numbers are never LUAD-HistoSeg numbers; no published numbers' in readme
    assert 'BCSS-WSSS numbers' not in readme.replace("`published.md` is BCSS-WSSS's", '')
    assert 'not LUAD-HistoSeg numbers' in (tmp_path / 'out' / 'protocols.md').read_text()
    build_report(work_dirs[0], tmp_path / 'out_bcss', method_readmes_root=root)
    assert (root / 'baselines' / 'cam' / 'README.md').read_text() != README_TEXT


def test_default_output_folder_per_dataset(work_dirs, tmp_path):
    assert default_out(work_dirs[0]) == 'reports'
    assert default_out(work_dirs[1]) == 'reports/luad'
    assert default_out(tmp_path / 'empty') == 'reports'


def test_mixed_datasets_are_refused(work_dirs):
    one = work_dirs[0] / 'runs' / 'cam__seed0' / 'result.json'
    result = json.loads(one.read_text())
    one.write_text(json.dumps({**relabel(result), 'dataset': 'luad'}))
    with pytest.raises(ReportError) as err:
        build_report(work_dirs[0], work_dirs[0] / 'out')
    assert 'results come from different data sets: ' in str(err.value)
    assert 'BCSS-WSSS (e.g. ' in str(err.value) and 'LUAD-HistoSeg (e.g. cam__seed0)' in str(
        err.value)


def test_figures_use_the_datasets_palette_and_names(tmp_path):
    labels = np.array([[0, 1, 2, 3, 4]])
    assert figures.colorize(labels, LUAD.palette).tolist() == [[list(c) for c in LUAD.palette]]
    assert figures.colorize(labels).tolist() == [[list(c) for c in BCSS.palette]]
    run_dir = tmp_path / 'run'
    (run_dir / 'preds').mkdir(parents=True)
    shutil.copy(FIXTURE / 'data' / 'test' / 'mask' / 't0.png', run_dir / 'preds' / 't0.png')
    np.savez(run_dir / 'prototype_maps.npz', maps=np.random.default_rng(0).random((8, 4, 4)),
             image='t0.png', num_per_class=2, label=np.array([1, 0, 0, 1]))
    drawn = {}
    for layout in (BCSS, LUAD):
        for name, draw in (('qualitative', figures.qualitative_figure),
                           ('maps', figures.prototype_maps_figure)):
            path = tmp_path / f'{name}_{layout.key}.png'
            assert draw({'lpd': run_dir}, FIXTURE / 'data', path, layout=layout)
            drawn[name, layout.key] = path.read_bytes()
    assert drawn['qualitative', 'bcss'] != drawn['qualitative', 'luad']
    assert drawn['maps', 'bcss'] != drawn['maps', 'luad']  # row labels TUM/NEC vs TE/TAS

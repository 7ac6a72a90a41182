"""``lpd-bench report``: tables, figures and a README from the stored results alone.

One report is of one data set (:mod:`.dataset`: BCSS-WSSS or LUAD-HistoSeg): its class names
head the per-class columns, its palette colours the figures, its name is in the captions. The
published numbers (``published.md``) and the methods' README tables are BCSS-WSSS's: a report of
another data set writes neither.
"""
import json
import warnings
from pathlib import Path

import pandas as pd

from ..methods import MAIN_GROUP, ablation_groups, group_titles, pre_stage_names, setting_notes
from ..runner.results import PLAN_WALL_FILE, iter_results, read_json
from ..data.layouts import DEFAULT_LAYOUT
from . import figures, power, reference, specialisation, stats, uncertainty
from .dataset import MixedDatasetsError, results_layout
from .method_readmes import update_method_readmes
from .tables import (CRF_NOT_APPLICABLE, GATING_LABELS, PROTOCOL_LABELS, PSEUDO_MASK_COLUMN,
                     PSEUDO_MASK_NOTE, STAGE2, ablation_table, add_pseudo_masks,
                     checkpoints_table, formatted, frame_scores, main_table, mean_std,
                     ordered_methods, protocols_table, pseudo_mask_cells, pseudo_mask_frame,
                     pseudo_mask_stats, result_stage, row_labels, score_cell, scores_frame,
                     split_variant, write_table)



def cost_stages() -> tuple:
    """Stages of the cost table: every registered method's pre-stages, train, test."""
    return (*pre_stage_names(), 'train', 'test')


class ReportError(Exception):
    """The work dir cannot be reported (no results, mixed data sets...)."""


def resolve_data_root(results, layout=DEFAULT_LAYOUT):
    """The one data root of all results (None -> the default synthetic set of ``layout``, the
    results' data set) and its manifest."""
    roots = sorted({str(r.get('data_root')) for r in results})
    if len(roots) > 1:
        raise ReportError(f'results come from different data roots {roots}; report each work dir '
                          'separately')
    root = results[0].get('data_root')
    if root is None:
        from ..data.synthetic import default_synthetic_root
        root = default_synthetic_root(layout=layout.key)
    manifest = Path(root) / 'manifest.json'
    return Path(root), (json.loads(manifest.read_text()) if manifest.is_file() else None)


def cost_frame(results) -> pd.DataFrame:
    """Per main stage-1 run: wall time of each stage, total, peak memory (both PBIP stages
    counted). Stage-2 runs are :func:`stage2_cost_frame`'s."""
    rows = []
    for result in results:
        if not any(m['name'] == MAIN_GROUP for m in result.get('memberships', [])):
            continue
        if result_stage(result) == 2:
            continue
        stages = {s['name']: s for s in result['cost']['stages']}
        row = {'method': result['method'], 'seed': result['seed'],
               'total_wall_s': result['cost']['total_wall_s'],
               'peak_rss_mb': result['cost']['peak_rss_mb'],
               'iters': stages.get('train', {}).get('iters'),
               'params': stages.get('train', {}).get('params')}
        row.update({f'{s}_wall_s': stages[s]['wall_s'] if s in stages else 0.0
                    for s in cost_stages()})
        rows.append(row)
    return pd.DataFrame(rows)


def cost_table(costs: pd.DataFrame):
    names = cost_stages()
    columns = [f'{s}_wall_s' for s in names] + ['total_wall_s', 'peak_rss_mb']
    stats = mean_std(costs, ['method'], columns)
    stats['params'] = costs.groupby('method', sort=False)['params'].first().values
    stats['iters'] = costs.groupby('method', sort=False)['iters'].first().values
    stats = stats.set_index('method').loc[ordered_methods(set(stats['method']))]
    stats = stats.reset_index()
    stats.insert(0, 'Method', stats['method'].map(row_labels()).fillna(stats['method']))
    shown = formatted(stats, ['Method'], columns)
    shown.columns = ['Method', *[f'{s.replace("_", " ")} (s)' for s in names], 'total (s)',
                     'peak RSS (MiB)', 'seeds']
    shown['params'] = stats['params']
    shown['train iters'] = stats['iters']
    return shown, stats


#: Stages of a stage-2 run, in the cost table's order.
STAGE2_COST_STAGES = ('pseudo_masks', 'train', 'test')
#: Columns of :func:`stage2_cost_frame` whose mean ± std :func:`stage2_cost_table` shows, and
#: their headers.
STAGE2_COST_COLUMNS = (('pseudo_masks_wall_s', 'pseudo-masks (s)'), ('train_wall_s', 'train (s)'),
                       ('test_wall_s', 'test (s)'), ('total_wall_s', 'stage 2 total (s)'),
                       ('stage1_wall_s', 'stage 1 total (s)'),
                       ('both_stages_wall_s', 'both stages (s)'),
                       ('peak_rss_mb', 'peak RSS stage 2 (MiB)'))


def _seconds(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return float('nan')


def stage2_cost_frame(results) -> pd.DataFrame:
    """Per stage-2 run: wall time of its stages (pseudo-masks, train, test), its total, the
    total of the stage-1 run it was made from (``cost.stage1_wall_s``, else that run's stored
    ``total_wall_s``) and of both stages (``cost.both_stages_wall_s``, else the sum)."""
    by_run = {r['run_id']: r for r in results}
    rows = []
    for result in results:
        if result_stage(result) != 2:
            continue
        cost = result.get('cost') or {}
        stages = {s.get('name'): s for s in cost.get('stages') or []}
        total = _seconds(cost.get('total_wall_s'))
        first = _seconds(cost.get('stage1_wall_s'))
        source = by_run.get(result.get('source_run'))
        if pd.isna(first) and source is not None:
            first = _seconds((source.get('cost') or {}).get('total_wall_s'))
        both = _seconds(cost.get('both_stages_wall_s'))
        if pd.isna(both):
            both = first + total
        row = {'method': result['method'], 'seed': result['seed'], 'run_id': result['run_id'],
               'source_run': result.get('source_run'), 'total_wall_s': total,
               'stage1_wall_s': first, 'both_stages_wall_s': both,
               'peak_rss_mb': _seconds(cost.get('peak_rss_mb')),
               'iters': stages.get('train', {}).get('iters'),
               'params': stages.get('train', {}).get('params')}
        row.update({f'{s}_wall_s': _seconds(stages[s].get('wall_s')) if s in stages else 0.0
                    for s in STAGE2_COST_STAGES})
        rows.append(row)
    return pd.DataFrame(rows)


def stage2_cost_table(costs: pd.DataFrame):
    """(shown, numeric) of :func:`stage2_cost_frame`: mean ± std over seeds per method."""
    columns = [c for c, _ in STAGE2_COST_COLUMNS]
    stats = mean_std(costs, ['method'], columns)
    stats['params'] = costs.groupby('method', sort=False)['params'].first().values
    stats['iters'] = costs.groupby('method', sort=False)['iters'].first().values
    stats = stats.set_index('method').loc[ordered_methods(set(stats['method']))].reset_index()
    stats.insert(0, 'Method', stats['method'].map(row_labels()).fillna(stats['method']))
    shown = formatted(stats, ['Method'], columns)
    shown.columns = ['Method', *[label for _, label in STAGE2_COST_COLUMNS], 'seeds']
    shown['params'] = stats['params']
    shown['train iters'] = stats['iters']
    return shown, stats


#: Variants shown in the ablation table's Markdown (paper protocol, oracle gating; the CSV has
#: every variant).
ABLATION_VARIANTS = (('oracle_crf', 'oracle, CRF'), ('oracle', 'oracle, no CRF'))


def ablation_shown(numeric: pd.DataFrame) -> pd.DataFrame:
    notes, titles = setting_notes(), group_titles()
    settings = [notes.get((g, str(v)), str(v)) for g, v in zip(numeric['group'], numeric['value'])]
    shown = pd.DataFrame({'Ablation': [titles.get(g, g) for g in numeric['group']],
                          'Setting': settings})
    for score in ('mIoU', 'mDice'):
        for variant, label in ABLATION_VARIANTS:
            if f'{variant}_{score}_mean' in numeric:
                lows = numeric.get(f'{variant}_{score}_lo', pd.Series(float('nan'),
                                                                      index=numeric.index))
                highs = numeric.get(f'{variant}_{score}_hi', lows * float('nan'))
                shown[f'{score} ({label})'] = [
                    score_cell(m, s, lo, hi) for m, s, lo, hi in zip(
                        numeric[f'{variant}_{score}_mean'], numeric[f'{variant}_{score}_std'],
                        lows, highs)]
            else:
                shown[f'{score} ({label})'] = '-'
    for variant, label in ABLATION_VARIANTS:
        shown[f'mIoU − default ({label})'] = [
            difference_cell(numeric, i, variant) for i in range(len(numeric))]
    shown['seeds'] = numeric.filter(like='_seeds').max(axis=1).astype(int)
    if 'interval_basis' in numeric:
        shown['intervals'] = numeric['interval_basis']
    shown['runs'] = numeric['runs']
    return shown


def difference_cell(numeric, i, variant) -> str:
    """'-1.20 [-2.10, -0.30] *' (vs the group's default, * = significant after Holm),
    'default', or '-' (no per-image data / no such variant)."""
    row = numeric.iloc[i]
    if row.get('default') is True or row.get('default') == 1:
        return 'default'
    difference = row.get(f'{variant}_diff', float('nan'))
    if pd.isna(difference):
        return '-'
    star = ' *' if uncertainty.is_yes(row.get(f'{variant}_significant')) else ''
    return (f'{difference:.2f} [{row[f"{variant}_diff_lo"]:.2f}, '
            f'{row[f"{variant}_diff_hi"]:.2f}]{star}')


def numeric_groups() -> list:
    """Ablation groups whose settings are all numbers (plotted as curves)."""
    return [group for group, points in ablation_groups().items()
            if all(isinstance(p.value, (int, float)) and not isinstance(p.value, bool)
                   for p in points)]


def main_run_dirs(results, work_dir) -> dict:
    """method -> run dir of its default run with the smallest seed (for the figures)."""
    chosen = {}
    for result in sorted(results, key=lambda r: r['seed']):
        if result_stage(result) == 2:  # the figures show the methods' own (stage-1) maps
            continue
        if any(m['name'] == MAIN_GROUP for m in result.get('memberships', [])):
            chosen.setdefault(result['method'], Path(work_dir) / 'runs' / result['run_id'])
    return chosen


def build_report(work_dir, out_dir, method_readmes_root=None) -> list:
    """Render everything into ``out_dir``; returns the files written. With
    ``method_readmes_root`` (the repository root), each method's README gets its results table
    (:mod:`.method_readmes`)."""
    results = iter_results(work_dir)
    if not results:
        raise ReportError(f'no complete results (result.json) under {Path(work_dir) / "runs"}; '
                          'run `lpd-bench run` first')
    try:
        layout = results_layout(results)
    except MixedDatasetsError as err:
        raise ReportError(str(err))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data_root, manifest = resolve_data_root(results, layout)
    synthetic = bool(manifest and manifest.get('synthetic'))
    frame = scores_frame(results, layout.classes)
    written = []
    try:
        label_only_matrices = reference.label_only_confusions(data_root)
        label_only = reference.label_only_scores(data_root, label_only_matrices, layout.classes)
    except FileNotFoundError as err:
        warnings.warn(f'label-only reference row skipped: {err}')
        label_only_matrices = label_only = None
    unc = uncertainty.analyse(results, frame, label_only_matrices)
    pseudo_masks = pseudo_mask_stats(pseudo_mask_frame(results))
    numeric = uncertainty.annotate_main(main_table(frame, label_only), unc)
    stage2 = any(result_stage(r) == 2 for r in results)
    if stage2:
        numeric = add_pseudo_masks(numeric, pseudo_masks)
    data_note = (f'SYNTHETIC stand-in data: not {layout.title} numbers.' if synthetic
                 else f'Data: {data_root}.')
    checkpoint_note = ('Last checkpoint of each training run (as the public code tests; '
                       '`checkpoints.md` compares the best-on-val one).')
    interval_note = (f'[lo, hi]: 95% bootstrap interval over the test images and seeds '
                     f'({stats.RESAMPLES} resamples; README, "Statistics"); "± std" (mean ± std '
                     f'over seeds) where the results hold {stats.NO_PER_IMAGE} (written before '
                     'the metric stored it).')
    label_note = ('The label-only row is a floor (oracle labels, no image content), not the worth '
                  'of oracle gating: that is each method\'s oracle − predicted score '
                  '(`protocols.md`).')
    shown = formatted(numeric, ['Gating', 'CRF', 'Background', 'Method'], frame_scores(frame))
    shown['mIoU 95% CI'] = [f'[{lo:.2f}, {hi:.2f}]' if not pd.isna(lo) else
                            stats.NO_PER_IMAGE for lo, hi in zip(numeric['mIoU_lo'],
                                                                 numeric['mIoU_hi'])]
    shown['significant mIoU differences (Holm 0.05)'] = numeric['compared']
    if stage2:
        shown[PSEUDO_MASK_COLUMN] = pseudo_mask_cells(numeric)
    stage2_note = (f'Gating "{GATING_LABELS[STAGE2]}": {STAGE2_NOTE} It is compared with the '
                   'other stage-2 rows only (Holm family stage2). ' + PSEUDO_MASK_NOTE + ' '
                   if stage2 else '')
    written += write_table(shown, numeric, out, 'main_results',
                           'Main comparison, test split, per-class IoU and means (%), mean ± std '
                           f'over seeds; mIoU 95% CI: bootstrap over test images and seeds '
                           f'(README, "Statistics"). {checkpoint_note} mIoU/mDice are over the 4 '
                           'tissue classes; BG IoU is listed for information; FwIoU (5 cl.) is '
                           'over all 5 classes (public code), FwIoU tissue (ours) over the 4 tissue '
                           'classes. Last column: the methods whose mIoU differs significantly '
                           'from the row\'s under the same gating, CRF and background (paired '
                           'bootstrap, Holm over the main family, `comparisons.md`; BG from GT '
                           'has the tissue mIoU of BG ignored). '
                           f'CRF "{CRF_NOT_APPLICABLE}": the label-only reference has no score '
                           f'maps. {stage2_note}{label_note} {data_note}')
    shown, compact = protocols_table(numeric, gains=uncertainty.gating_gains(numeric, unc),
                                     pseudo_masks=pseudo_masks if stage2 else None)
    written += write_table(shown, compact, out, 'protocols',
                           'mIoU (%) of each method under every gating x CRF x background '
                           f'protocol, test split. {interval_note} {checkpoint_note} '
                           '"-": not in the stored results (e.g. runs tested without CRF, '
                           'written before the protocol existed, or a method without that '
                           'gating); "n/a": does not apply (the '
                           'label-only reference is oracle-gated and has no maps for a CRF: its '
                           'scores are in the no-CRF columns). BG ignored and BG from GT give the '
                           'same tissue mIoU by construction (README). "oracle − predicted": '
                           'what the oracle image labels are worth to each method (BG counted; '
                           'paired interval, * = significant after Holm). '
                           f'{stage2_note}{label_note} {data_note}')
    if len(frame):
        shown, by_checkpoint = checkpoints_table(frame)
        written += write_table(shown, by_checkpoint, out, 'checkpoints',
                               'Checkpoint choice: mIoU (%) of the last vs the best-on-val '
                               'checkpoint, paper protocol (oracle gating, BG counted), with and '
                               'without CRF, mean ± std over seeds. "-": the run saved no '
                               'best-on-val checkpoint or did not record its metrics. '
                               f'{data_note}')
    ablations = ablation_table(frame)
    if len(ablations):
        ablations = uncertainty.annotate_ablations(ablations, unc)
        written += write_table(ablation_shown(ablations), ablations, out, 'ablations',
                               'Ablations, paper protocol (oracle gating, BG counted), with '
                               f'and without CRF (%). mIoU: {interval_note} "mIoU − default": '
                               'paired bootstrap difference to the group\'s default point with '
                               'its 95% interval; * = significant at 0.05 after Holm over the '
                               'ablation family (`comparisons.md`). '
                               f'{checkpoint_note} Predicted gating: ablations.csv. {data_note}')
    titles = group_titles()
    for group in numeric_groups():
        path = out / f'ablation_{group}.png'
        if figures.ablation_plot(frame, group, titles[group], path, unc):
            written.append(path)
    written += write_table(uncertainty.comparisons_shown(unc), unc.comparisons, out,
                           'comparisons',
                           'Every paired comparison of the report: mIoU difference A − B (%) '
                           'over the same test images and seeds, its 95% bootstrap interval, '
                           'two-sided p, Holm-adjusted p within the family, significant at '
                           '0.05 after Holm. Families: main (every pair of main methods, every '
                           'variant both have, BG counted and BG ignored; BG from GT has the '
                           'tissue mIoU of BG ignored), stage2 (the same pairs within the '
                           'stage-2 block: networks trained on each method\'s pseudo-masks, no '
                           'labels at test), ablations (every point against its '
                           'group\'s default, BG counted), gating (oracle − predicted of each '
                           f'method, BG counted). "{stats.NO_PER_IMAGE}": a side\'s results '
                           'were written before the metric stored per-image matrices; not '
                           f'tested. Scheme: README, "Statistics". {data_note}')
    power_check = power.analyse(results, unc.boot, work_dir)
    written += power.write(power_check, out, data_note)
    costs = cost_frame(results)
    if len(costs):
        shown, cost_stats = cost_table(costs)
        written += write_table(shown, cost_stats, out, 'cost', 'Cost per method, mean ± std over seeds '
                               '(wall seconds; a method with a stage before training counts it).'
                               + (' Stage 1 only: the stage-2 runs and the totals of both '
                                  'stages are in `cost_stage2.md`.' if stage2 else ''))
    stage2_costs = stage2_cost_frame(results)
    if len(stage2_costs):
        shown, stage2_stats = stage2_cost_table(stage2_costs)
        written += write_table(shown, stage2_stats, out, 'cost_stage2',
                               'Cost of stage 2 per method, mean ± std over seeds (wall '
                               'seconds): making the pseudo-masks from the stage-1 run (train '
                               'split, and val for their score), training the stage-2 network on '
                               'them, testing it; "stage 2 total": the stage-2 run; "stage 1 '
                               'total": the stage-1 run it was made from (`cost.md`); "both '
                               'stages": their sum, what a label-free prediction costs from '
                               'scratch.')
    spec_frame = specialisation.specialisation_frame(results)
    if len(spec_frame):
        shown, spec_numeric = specialisation.specialisation_table(spec_frame)
        written += write_table(shown, spec_numeric, out, 'specialisation',
                               'Prototype specialisation, test split: NMI of the winning '
                               'prototype within each class with the sub-morphology the generator '
                               'drew each pixel from, and with its cell in a 4 x 4 position grid '
                               '(mean over classes, mean ± std over seeds). Prototypes that follow '
                               'the tissue\'s appearance score high on the first; prototypes that '
                               'split by position, on the second. k = 1 has nothing to measure. '
                               f'{data_note}')
        if specialisation.specialisation_figure(shown, spec_numeric,
                                                out / 'specialisation.png'):
            written.append(out / 'specialisation.png')
    if layout is DEFAULT_LAYOUT:  # the published numbers are BCSS-WSSS's
        published = reference.published_table()
        written += write_table(published.astype(object).fillna('-'), published, out, 'published',
                               'PUBLISHED numbers on the real BCSS-WSSS test split (%), from the '
                               'papers; not produced by this benchmark. Gating, Background, CRF, '
                               'Checkpoint and Seeds say how each source scored its number '
                               f'("{reference.UNSTATED}": the source does not say); published '
                               'numbers mix these conventions (docs/protocol.md, sections 5 and '
                               '8).')
    run_dirs = main_run_dirs(results, work_dir)
    for name, draw in (('qualitative.png', figures.qualitative_figure),
                       ('prototype_maps.png', figures.prototype_maps_figure)):
        if draw(run_dirs, data_root, out / name, layout=layout):
            written.append(out / name)
    readme = out / 'README.md'
    plan_wall = read_json(Path(work_dir) / PLAN_WALL_FILE)
    readme.write_text(readme_text(results, data_root, manifest, written, out, plan_wall, unc,
                                  power_check, layout))
    method_readmes = [] if method_readmes_root is None or layout is not DEFAULT_LAYOUT else \
        update_method_readmes(numeric, method_readmes_root, f'`lpd-bench report`; {data_note}')
    return written + [readme] + method_readmes


def _first_line(path) -> str:
    """The first non-empty line of a Markdown file, without heading marks."""
    for line in Path(path).read_text().splitlines():
        if line.strip():
            return line.lstrip('#').strip()
    return ''


def _unique(values) -> str:
    return ', '.join(sorted({json.dumps(v, sort_keys=True, default=str) for v in values}))


def cpu_preset_caveats(layout=DEFAULT_LAYOUT) -> list:
    """:data:`CPU_PRESET_CAVEATS`, naming ``layout``'s data set."""
    return [line.replace('BCSS-WSSS numbers', f'{layout.title} numbers')
            for line in CPU_PRESET_CAVEATS]


#: What a reader of CPU-preset numbers must know (no pretrained weights can be had on our machines).
CPU_PRESET_CAVEATS = [
    '## Caveats of the CPU preset',
    '- The MiT backbone is tiny (widths 16/32/80/128) at 112 px. In place of ImageNet weights it '
    'starts from a backbone pretrained once on the train split with the image-level labels '
    '(a one-vector-per-class classifier; reports/cpu_backbone.md), the same file for every '
    'method and seed, then fine-tunes for the preset\'s schedule (where CAM\'s and LPD\'s val '
    'mIoU have flattened: reports/calibration_v3.md). The mask refiner\'s frozen encoder is a '
    'two-stage patch MLP pretrained on the train split\'s single-label images, seeing 16 px '
    'cut-outs (reports/cpu_encoder.md). No DenseCRF at test time. No ImageNet weights are used.',
    '- So the clustering baselines\' banks cluster features of that small encoder: this says '
    'nothing about PBIP with its ImageNet Swin-T. Synthetic numbers measure the pipeline and the '
    'methods on a stand-in task with known sub-morphologies; they are not BCSS-WSSS numbers.',
    '']


def plan_wall_text(plan_wall) -> str:
    """One line on the wall time of the last ``lpd-bench run`` in the work dir."""
    if not plan_wall:
        return 'not recorded (no plan_wall.json in the work dir)'
    return (f'{plan_wall["wall_s"] / 60:.1f} min for {plan_wall["executed"]} runs executed '
            f'({plan_wall["skipped"]} skipped as done, {plan_wall["failed"]} failed), '
            f'{plan_wall["jobs"]} at a time with {plan_wall["threads"]} thread(s) each, seeds '
            f'{plan_wall["seeds"]}; per-run costs are in `cost.md`')


def protocol_text(results) -> list:
    """README lines on the measurement protocol: gating, background, CRF, checkpoint, FwIoU."""
    with_crf = sum(any(split_variant(v)[1] for v in r['metrics']['results']) for r in results)
    with_best = sum(bool((r.get('metrics_by_checkpoint') or {}).get('best')) for r in results)
    thresholds = _unique(r['protocol']['gating_threshold'] for r in results
                         if 'gating_threshold' in (r.get('protocol') or {})) or 'not recorded'
    return [
        '## Measurement protocol',
        'Every result is one 5x5 confusion matrix per prediction variant over the whole test '
        'split; the tables read each variant under every background protocol (docs/protocol.md, '
        'section 5). The variant is the gating plus, optionally, CRF.',
        '- Gating: *oracle* multiplies the test maps by the image labels taken from the '
        'ground-truth mask (what the public code does); *predicted* thresholds the classifier '
        'score the model was trained on (the mean-merged stage-4 class score) at '
        f'`test_cfg.gating_threshold` (recorded: {thresholds}; chosen on val, never on test); '
        '*none* ("none (no labels at test)", methods that provide it, e.g. the colour rule): all '
        'four tissue classes allowed; *stage 2* ("stage 2, no labels at test"): a network '
        'trained on the method\'s pseudo-masks ("Stage 2" below). Every gating a result holds '
        'is reported and labelled.',
        f'- Background, three conventions found in the published numbers: '
        f'**{PROTOCOL_LABELS["bg_counted"]}** (`bg_counted`, the public LPD/PBIP code): the full '
        '5x5 matrix, tissue predicted on background pixels is a false positive; '
        f'**{PROTOCOL_LABELS["bg_ignored"]}** (`bg_ignored`): pixels whose ground truth is '
        f'background are dropped; **{PROTOCOL_LABELS["bg_from_gt"]}** (`bg_from_gt`, the '
        'WSSS-Tissue/MLPS and SSHR code: `pred[gt == 4] = 4` before scoring), computed on the '
        'matrix by moving its BG row into the BG column. mIoU and mDice are means over the 4 '
        'tissue classes in all three; tissue predicted as BG is a false negative in all three. '
        'On the tissue classes `bg_from_gt` removes exactly the false positives that '
        '`bg_ignored` drops, so their per-tissue IoU, mIoU and mDice are equal; they differ in '
        'the BG IoU and the 5-class FwIoU.',
        '- CRF: DenseCRF with the public parameters (Gaussian sxy 15 / compat 30, bilateral '
        'sxy 10 / srgb 20 / compat 50, 5 iterations, unary from the softmax over the 5 fused '
        'channels, on the de-normalised uint8 image), part of the paper protocol. Runs tested '
        'with `test_cfg.crf=True` record both the CRF and the no-CRF prediction of each gating; '
        f'{with_crf} of {len(results)} stored results have CRF variants ("-" in the CRF columns '
        'of the others).',
        '- Checkpoint: every table shows the LAST checkpoint of each training run, as the '
        'public code tests it; `checkpoints.md` compares it with the best-on-val checkpoint '
        "(saved on the validation mIoU: oracle gating, BG counted, no CRF), for the "
        f'{with_best} of {len(results)} results that recorded one.',
        '- FwIoU: frequency-weighted IoU over all 5 classes, background included, weights = '
        'ground-truth pixel counts (as the public code). *FwIoU tissue (ours)*: the same over '
        'the 4 tissue classes only. Under `bg_ignored` background has no ground-truth pixels, '
        'so the two are equal there. Results stored before the 5-class FwIoU held the tissue '
        'one under `FwIoU`: the report reads it as FwIoU tissue and recomputes FwIoU from the '
        'stored confusion matrix ("-" where none was stored).',
        '']


#: What the stage-2 block is (captions and README).
STAGE2_NOTE = ('an ordinary segmentation network (MMSegmentation) trained on pseudo-masks that the '
               "method's stage-1 run made on the train split, gated by the train images' own "
               'image-level labels (the weak labels), then tested with no labels at all: the '
               'label-free protocol of two-stage WSSS.')


def stage2_text(results) -> list:
    """README lines on the stage-2 block (none without stage-2 results)."""
    stage2 = [r for r in results if result_stage(r) == 2]
    if not stage2:
        return []
    methods = ', '.join(row_labels().get(m, m) for m in ordered_methods({r['method']
                                                                         for r in stage2}))
    return [
        '## Stage 2 (no labels at test)',
        f'The main table\'s block "{GATING_LABELS[STAGE2]}" is, for each main method, '
        f'{STAGE2_NOTE} It is what a user without any test label gets, unlike the oracle rows '
        '(image labels from the test mask); its rows are compared with each other only '
        f'(Holm family stage2). {len(stage2)} stage-2 results ({methods}); '
        f'column "{PSEUDO_MASK_COLUMN}": the pseudo-mask step run on val with val\'s image '
        'labels and scored against val\'s masks (train has no masks). Their cost, with the '
        'stage-1 run they need, is in `cost_stage2.md`.',
        '']


def statistics_text(results, unc) -> list:
    """README lines on the intervals and comparisons (the scheme of :mod:`.stats`)."""
    with_images = sum(bool((r.get('metrics') or {}).get('per_image')) for r in results)
    rows = unc.comparisons
    counts = []
    for family in uncertainty.FAMILIES:
        picked = rows[rows['family'] == family]
        if family == 'stage2' and not len(picked):
            continue
        tested = picked[~picked['p'].isna()]
        counts.append(f'{family}: {len(tested)} tested, '
                      f'{int(sum(uncertainty.is_yes(v) for v in tested["significant"]))} '
                      f'significant, {len(picked) - len(tested)} without per-image data')
    return [
        '## Statistics',
        f'{with_images} of {len(results)} stored results hold per-image confusion matrices '
        f'(metric JSON `per_image`, {unc.images} test images); the others were written before '
        f'the metric stored them: their rows show mean ± std over seeds and say '
        f'"{stats.NO_PER_IMAGE}".',
        f'- Intervals: 95% percentile bootstrap over the test images, {stats.RESAMPLES} resamples '
        f'(seed {stats.SEED}), one set of resamples shared by every interval and comparison. For '
        'a resample, each run\'s per-image matrices are summed with the resample\'s '
        'multiplicities and mIoU is computed from the sum as the metric does. A method\'s score '
        'is the mean over its seeds; with several seeds every replicate also draws its seeds with '
        'replacement (images x seeds), so the interval covers both the choice of test images and '
        'the seed-to-seed variation.',
        '- Paired comparisons (A − B): the same image resamples for both sides and the same seed '
        'draws over the seeds both have (paired by seed). Interval: percentiles of the '
        'differences; p (two-sided) from the normal approximation of their bootstrap '
        'distribution (2 * norm.sf(|d| / sd)), as the empirical tail fraction cannot go below '
        f'1/{stats.RESAMPLES} (`comparisons.csv` also has it, `p_empirical`).',
        '- Holm correction within each family: main (every pair of main methods, every variant '
        'both have, BG counted and BG ignored; BG from GT has the tissue mIoU of BG ignored by '
        'construction), stage2 (the same within the stage-2 block), ablations (every point '
        'against its group\'s default: the point run '
        'with the owner\'s default settings, else the group\'s first point; BG counted), '
        'gating (each method\'s oracle − predicted, BG counted). Significant: Holm-adjusted '
        f'p < {stats.ALPHA}. In this report: ' + '; '.join(counts) + '.',
        '- What it does not cover: the test images are one draw of the data\'s distribution '
        '(a synthetic set is re-drawn by its generator seed, not resampled here); with one seed '
        'the interval says nothing of training randomness.',
        '']


def power_text(power_check) -> list:
    """README lines of the power check (details in ``power.md``)."""
    return ['## Power check',
            'Planted, known-worse variants of LPD must come out significantly worse than full '
            'LPD; seeds of one method must mostly not differ significantly '
            '([`power.md`](power.md), docs/protocol.md "Power check").',
            *power.summary(power_check),
            *[f'- Missing: {line}' for line in power_check.missing], '']


def readme_text(results, data_root, manifest, written, out, plan_wall=None, unc=None,
                power_check=None, layout=DEFAULT_LAYOUT) -> str:
    seeds = sorted({r['seed'] for r in results})
    title = layout.title
    if manifest:
        data = (f'{"synthetic" if manifest.get("synthetic") else "real"} data at `{data_root}`; '
                f'generator `{manifest.get("generator")}` version '
                f'{manifest.get("generator_version")}, seed {manifest.get("seed")}, images per '
                f'split {manifest.get("counts")}.')
    else:
        data = f'data at `{data_root}` (no manifest.json: assumed the real {title}).'
    protocols = _unique({k: v for k, v in (r.get('protocol') or {}).items()
                         if k != 'checkpoint_path'} for r in results)
    common = set.intersection(*[{(k, json.dumps(v)) for k, v in (r['cfg_options'] or {}).items()
                                 if k != 'randomness.seed'} for r in results])
    overrides = ', '.join(f'`{k}={json.loads(v)}`' for k, v in sorted(common)) or 'none'
    files = '\n'.join(f'- [`{p.name}`]({p.name})' for p in written)
    kept = sorted(p for p in Path(out).glob('*.md') if p not in set(written) and
                  p.name != 'README.md')  # measurements stored there by other commands
    other = '\n'.join(f'- [`{p.name}`]({p.name}): {_first_line(p)}' for p in kept) or '- none'
    lines = [
        '# lpd-bench report', '',
        f'Generated by `lpd-bench report` from {len(results)} stored results.', '',
        '## Setup',
        *([] if layout is DEFAULT_LAYOUT else [
            f'- Data set: {title} (`lpd-bench run --dataset {layout.key}`), classes '
            f'{", ".join(layout.tissue_classes)} (+ {layout.classes[-1]}).']),
        f'- Data: {data}',
        f'- Synthetic numbers are never {title} numbers; ' + (
            'the published BCSS-WSSS numbers are in a separate table (`published.md`), with the '
            'protocol each source used.' if layout is DEFAULT_LAYOUT else
            'no published numbers are tabulated for it (`published.md` is BCSS-WSSS\'s).'),
        f'- Preset: {_unique(r.get("preset") for r in results)}; configs: '
        f'{_unique(r["config"] for r in results)}.',
        f'- Seeds: {seeds}; tables show the mean over seeds with its 95% bootstrap interval '
        '(test images x seeds, "Statistics" below) where the results hold per-image data, else '
        'mean ± sample std (ddof=1) over seeds.',
        f'- `--cfg-options` shared by every run (besides the seed): {overrides}.',
        f'- Protocol switches recorded by the runs: {protocols}',
        f'- Wall time of the last `lpd-bench run`: {plan_wall_text(plan_wall)}.',
        f'- Git commits: {_unique(r["env"].get("git_commit") for r in results)} (dirty: '
        f'{_unique(r["env"].get("git_dirty") for r in results)}); packages: '
        f'{_unique(r["env"].get("packages") for r in results)}.', '',
        *protocol_text(results),
        *stage2_text(results),
        *(cpu_preset_caveats(layout) if any(r.get('preset') == 'cpu' for r in results) else []),
        *(statistics_text(results, unc) if unc is not None else []),
        *(power_text(power_check) if power_check is not None else []),
        '## Label-only floor (reference row)',
        reference.__doc__.split('\n\n', 1)[1].strip(), '',
        '## Ablations',
        'Runs shared between ablations are trained once (e.g. LPD k=10, lambda=0.5 is the LPD '
        'default run). lambda=0 is run with the diversity loss off. Learnable vs clustered '
        'prototypes is compared at k=3: LPD k=3, LPD k=3 without diversity loss (same losses as '
        'PBIP), PBIP k=3. With k = 1 the public refiner selection (score > class mean) selects '
        'no prototype, so the k = 1 point has no mask refiner.', '',
        '## Files', files, '',
        '## Other measurements in this folder (written by other commands, not by this report)',
        other, '',
    ]
    for name, title in (('protocols.md', 'Main results: mIoU under every protocol'),
                        ('checkpoints.md', 'Last vs best-on-val checkpoint')):
        if (out / name).is_file():
            lines += [f'## {title}', (out / name).read_text()]
    if (out / 'main_results.md').is_file():
        lines += ['Per-class IoU, mDice and FwIoU of every protocol: '
                  '[`main_results.md`](main_results.md).', '']
    return '\n'.join(lines) + '\n'

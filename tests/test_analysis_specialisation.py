"""The prototype-specialisation measure: NMI on known labelings, the per-class counter, and the
post-stage on data without sub-morphology maps."""
import json
import math
import shutil

import numpy as np
import pytest

from lpd_bench.analysis.specialisation import (SpecialisationCounter, contingency,
                                               normalized_mutual_info, position_ids,
                                               region_winners, winning_prototypes)
from lpd_bench.data.synthetic import SUBMORPHOLOGY_DIR


def test_nmi_of_identical_independent_and_constant_labelings():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert normalized_mutual_info(contingency(a, a)) == pytest.approx(1.0)
    assert normalized_mutual_info(contingency(a, 2 - a)) == pytest.approx(1.0)  # relabelled
    x, y = np.repeat([0, 1], 4), np.tile([0, 1], 4)  # balanced and independent
    assert normalized_mutual_info(contingency(x, y)) == pytest.approx(0.0, abs=1e-12)
    assert normalized_mutual_info(contingency(np.zeros(5, int), np.zeros(5, int))) == 0.0
    assert math.isnan(normalized_mutual_info(np.zeros((2, 2))))


def test_nmi_known_value():
    # joint p = [[1/2, 0], [1/4, 1/4]]: I = 0.2158 nats, H(A) = ln 2, H(B) = 0.5623
    table = np.array([[2, 0], [1, 1]])
    pa, pb = np.array([.5, .5]), np.array([.75, .25])
    joint = table / 4
    mutual = sum(joint[i, j] * math.log(joint[i, j] / (pa[i] * pb[j]))
                 for i in range(2) for j in range(2) if joint[i, j] > 0)
    entropy = -(pa * np.log(pa)).sum() - (pb * np.log(pb)).sum()
    assert normalized_mutual_info(table) == pytest.approx(mutual / (entropy / 2))


def test_position_cells_and_winning_prototype():
    cells = position_ids(4, 8, grid=2)
    assert cells[0, 0] == 0 and cells[0, 7] == 1 and cells[3, 0] == 2 and cells[3, 7] == 3
    maps = np.zeros((4, 2, 2))  # C=2, k=2: rows 0,1 class 0; rows 2,3 class 1
    maps[1, 0, 0] = 5
    maps[3, 1, 1] = 5
    assert winning_prototypes(maps, 2, 0).tolist() == [[1, 0], [0, 0]]
    assert winning_prototypes(maps, 2, 1).tolist() == [[0, 0], [0, 1]]


def test_counter_tells_specialisation_from_position():
    """A class whose two prototypes follow two sub-morphologies that lie left/right of a random
    cut (not aligned with the grid) scores NMI 1 on sub-morphology and less on position; a model
    whose prototypes split by top/bottom while the sub-morphologies are left/right scores the
    reverse."""
    rng = np.random.default_rng(0)
    size, k = 16, 2
    special = SpecialisationCounter(num_classes=1, num_per_class=k, grid=2)
    positional = SpecialisationCounter(num_classes=1, num_per_class=k, grid=2)
    for _ in range(6):
        cut = rng.integers(3, 13)
        sub = np.zeros((size, size), np.int64)
        sub[:, cut:] = 1
        mask = np.zeros((size, size), np.int64)
        follows = np.stack([(sub == 0), (sub == 1)]).astype(float)
        top_bottom = np.zeros((k, size, size))
        top_bottom[0, :size // 2], top_bottom[1, size // 2:] = 1, 1
        special.add(follows, mask, sub + 1)
        positional.add(top_bottom, mask, sub + 1)
    good, bad = special.result()['classes']['TUM'], positional.result()['classes']['TUM']
    assert good['nmi_submorphology'] == pytest.approx(1.0)
    assert good['nmi_submorphology'] > good['nmi_position']
    assert bad['nmi_position'] > bad['nmi_submorphology']
    assert good['pixels'] == 6 * size * size and sum(good['prototype_share']) == pytest.approx(1)


def test_region_winners_match_upsampling_every_map():
    """Comparing only region pixels gives the winners, and the counts, of taking the winner
    over the whole upsampled patch (classes 1 and 3 absent, 255 ignored)."""
    import torch
    import torch.nn.functional as F

    num_classes, k, size = 5, 4, 24
    gen = torch.Generator().manual_seed(0)
    maps = torch.randn(num_classes * k, 6, 6, generator=gen)
    rng = np.random.default_rng(0)
    mask = rng.choice([0, 2, 4, 255], size=(size, size))
    sub = rng.integers(0, 7, size=(size, size))
    full = F.interpolate(maps[None], size=(size, size), mode='bilinear',
                         align_corners=True)[0].numpy()
    winners = region_winners(maps, mask, num_classes)
    assert sorted(winners) == [0, 2, 4]
    for cls in winners:
        expected = winning_prototypes(full, num_classes, cls)[mask == cls]
        assert winners[cls].shape == expected.shape and (winners[cls] == expected).all()
    fast = SpecialisationCounter(num_classes, k, grid=2)
    fast.add_winners(winners, mask, sub)
    slow = SpecialisationCounter(num_classes, k, grid=2)
    slow.add(full, mask, sub)
    for name in ('submorphology', 'position'):
        assert sorted(fast.tables[name]) == [0, 2, 4]
        for cls, table in slow.tables[name].items():
            assert (fast.tables[name][cls] == table).all() and table.sum() == (mask == cls).sum()


def test_single_prototype_gives_nan_and_sizes_must_agree():
    counter = SpecialisationCounter(num_classes=1, num_per_class=1)
    counter.add(np.ones((1, 4, 4)), np.zeros((4, 4), int), np.ones((4, 4), int))
    assert math.isnan(counter.result()['classes']['TUM']['nmi_submorphology'])
    with pytest.raises(ValueError, match='same size'):
        counter.add(np.ones((1, 4, 4)), np.zeros((4, 5), int), np.ones((4, 4), int))


def test_post_stage_without_submorphology_maps_says_so(tmp_path, tiny_data):
    from lpd_bench.analysis.specialisation import main
    out = tmp_path / 'spec.json'
    data = tmp_path / 'data'  # the tiny set without its sub-morphology maps (as real BCSS-WSSS)
    shutil.copytree(tiny_data, data)
    shutil.rmtree(data / SUBMORPHOLOGY_DIR, ignore_errors=True)
    result = main(['configs/lpd_synth_cpu.py', '--out', str(out), '--checkpoint', 'none.pth',
                   '--cfg-options', f'data_root={data}', 'cpu_encoder=random'])
    assert result['available'] is False and 'submorphology' in result['reason']
    assert json.loads(out.read_text()) == result


def test_report_table_and_figure_from_stored_stage_outputs(tmp_path):
    from lpd_bench.report.specialisation import (specialisation_figure, specialisation_frame,
                                                 specialisation_table)
    results = []
    for seed, (sub, pos) in enumerate([(0.6, 0.1), (0.4, 0.1)]):
        path = tmp_path / f'spec{seed}.json'
        path.write_text(json.dumps({'available': True, 'num_per_class': 3, 'grid': 4,
                                    'mean': {'nmi_submorphology': sub, 'nmi_position': pos}}))
        results.append({'method': 'lpd', 'seed': seed, 'memberships': [
            {'name': 'main', 'value': 'LPD'}, {'name': 'num_per_class', 'value': 3}],
            'cost': {'stages': [{'name': 'specialisation', 'path': str(path)}]}})
    missing = tmp_path / 'none.json'
    missing.write_text(json.dumps({'available': False, 'reason': 'v2'}))
    results.append({'method': 'pbip', 'seed': 0, 'memberships': [{'name': 'main', 'value': 'x'}],
                    'cost': {'stages': [{'name': 'specialisation', 'path': str(missing)}]}})
    shown, numeric = specialisation_table(specialisation_frame(results))
    assert list(shown['Run']) == ['LPD', 'num_per_class = 3']
    assert numeric['nmi_submorphology_mean'].tolist() == pytest.approx([0.5, 0.5])
    assert shown['NMI sub-morphology'][0].startswith('0.500 ± 0.14')
    assert specialisation_figure(shown, numeric, tmp_path / 'fig.png')
    assert (tmp_path / 'fig.png').stat().st_size > 1000


def test_report_writes_the_specialisation_table_when_runs_measured_it(tmp_path):
    import shutil
    from pathlib import Path

    from lpd_bench.report.build import build_report
    fixture = Path(__file__).parent / 'fixtures' / 'results'
    work = tmp_path / 'work'
    shutil.copytree(fixture / 'work_dir', work)
    for index, path in enumerate(sorted(work.glob('runs/*/result.json'))):
        result = json.loads(path.read_text().replace('@DATA@', str(fixture / 'data')))
        if result['method'] == 'lpd':
            stage = path.parent / 'specialisation.json'
            stage.write_text(json.dumps({'available': True, 'num_per_class': 10, 'grid': 4, 'mean': {
                'nmi_submorphology': 0.3 + 0.01 * index, 'nmi_position': 0.1}}))
            result['cost']['stages'].append({'name': 'specialisation', 'path': str(stage)})
        path.write_text(json.dumps(result))
    written = build_report(work, tmp_path / 'r')
    assert tmp_path / 'r' / 'specialisation.md' in written
    md = (tmp_path / 'r' / 'specialisation.md').read_text()
    assert '| LPD ' in md and 'num_per_class = 3' in md
    assert (tmp_path / 'r' / 'specialisation.png').is_file()


def test_learning_curve_tool_reads_validation_scalars(tmp_path):
    from helpers import load_tool
    for segment, steps in (('20260101_000000', (100, 200)), ('20260101_010000', (200, 300))):
        folder = tmp_path / 'run' / segment / 'vis_data'
        folder.mkdir(parents=True)
        lines = [json.dumps({'loss': 1.0, 'step': 50})]
        lines += [json.dumps({'mIoU': step / 10 + segment.endswith('010000'), 'step': step})
                  for step in steps]
        (folder / 'scalars.json').write_text('\n'.join(lines) + '\n')
    table = load_tool('learning_curve').main(
        [f'cam={tmp_path / "run"}', '--out', str(tmp_path / 'lc.png')])
    assert table['cam'].to_dict() == {100: 10.0, 200: 21.0, 300: 31.0}  # the resumed segment wins
    assert (tmp_path / 'lc.png').is_file() and 'iteration |   cam |' in (tmp_path / 'lc.md').read_text()


def test_same_size_batches_keep_order_cap_the_size_and_never_mix_sizes():
    import torch

    from lpd_bench.analysis.specialisation import same_size_batches
    shapes = [(3, 8, 8)] * 5 + [(3, 6, 8)] * 2 + [(3, 8, 8)]
    dataset = [{'inputs': torch.zeros(s), 'i': i} for i, s in enumerate(shapes)]
    batches = list(same_size_batches(dataset, 3))
    assert [[item['i'] for item in b] for b in batches] == [[0, 1, 2], [3, 4], [5, 6], [7]]

"""Timing statistics of the benchmark harness (lpd_bench.bench.stats), on hand-made calls."""
import pytest

from lpd_bench.bench.stats import Timing, measure, measure_interleaved


def test_timing_median_min_max():
    t = Timing.from_samples([3.0, 1.0, 2.0, 10.0])
    assert (t.median_s, t.min_s, t.max_s, t.repeats) == (2.5, 1.0, 10.0, 4)
    assert t.per_second(5) == pytest.approx(2.0)
    with pytest.raises(ValueError, match='at least one sample'):
        Timing.from_samples([])


def test_measure_warms_up_then_times_each_call():
    calls = []
    t = measure(lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5 and t.repeats == 3 and t.min_s >= 0
    with pytest.raises(ValueError, match='repeats'):
        measure(lambda: None, warmup=0, repeats=0)


def test_interleaved_rounds_warm_each_case_then_alternate():
    order = []
    timings = measure_interleaved([lambda: order.append('a'), lambda: order.append('b')],
                                  warmup=1, repeats=2)
    assert order == ['a', 'b', 'a', 'b', 'a', 'b'] and [t.repeats for t in timings] == [2, 2]


def test_timing_keeps_its_samples_in_order():
    t = Timing.from_samples([3.0, 1.0, 2.0])
    assert t.samples == (3.0, 1.0, 2.0) and t.median_s == 2.0

"""Timing statistics of repeated measurements (median, min, max) and the timing loop."""
import statistics
import time
from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple


@dataclass(frozen=True)
class Timing:
    """Seconds per call over ``repeats`` timed calls."""
    median_s: float
    min_s: float
    max_s: float
    repeats: int
    samples: Tuple[float, ...] = ()  # the timed calls, in round order

    @classmethod
    def from_samples(cls, seconds: Sequence[float]) -> 'Timing':
        if not seconds:
            raise ValueError('a timing needs at least one sample, got none')
        if any(s < 0 for s in seconds):
            raise ValueError(f'negative duration in timing samples {list(seconds)}')
        return cls(statistics.median(seconds), min(seconds), max(seconds), len(seconds),
                   tuple(seconds))

    def per_second(self, items: int) -> float:
        """Throughput (``items`` per call divided by the median seconds per call)."""
        return items / self.median_s if self.median_s > 0 else float('inf')


def measure(fn: Callable[[], object], warmup: int, repeats: int,
            synchronize: Callable[[], None] = lambda: None) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then time ``repeats`` calls (``synchronize`` after each)."""
    return measure_interleaved([fn], warmup, repeats, synchronize)[0]


def measure_interleaved(fns: Sequence[Callable[[], object]], warmup: int, repeats: int,
                        synchronize: Callable[[], None] = lambda: None) -> List[Timing]:
    """Warm each of ``fns`` up, then time them in ``repeats`` rounds of one call each.

    Round-robin order spreads slow phases of a shared machine over all cases alike, so ratios of
    their medians are fairer than with one case timed after the other.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f'need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}')
    for fn in fns:
        for _ in range(warmup):
            fn()
            synchronize()
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples):
            start = time.perf_counter()
            fn()
            synchronize()
            out.append(time.perf_counter() - start)
    return [Timing.from_samples(s) for s in samples]

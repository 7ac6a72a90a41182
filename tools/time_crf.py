"""Time the DenseCRF of the test protocol: ms per CRF, in process and in a worker pool.

    python tools/time_crf.py [--images 32] [--workers 2 4]

Uses the first test images of the default synthetic set (224 x 224) with random 5-channel
scores; prints one line per parameter set and worker count.
"""
import argparse
import time

import numpy as np
from PIL import Image

from lpd_bench.data.synthetic import default_synthetic_root
from lpd_bench.models.crf import CRF_PRESETS, dense_crf, resolve_crf_params, run_dense_crf


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, default=32)
    parser.add_argument('--workers', type=int, nargs='*', default=[2])
    args = parser.parse_args(argv)
    paths = sorted((default_synthetic_root() / 'test' / 'img').glob('*.png'))[:args.images]
    rng = np.random.default_rng(0)
    tasks = []
    for path in paths:  # BGR, as the test pipeline loads it
        image = np.ascontiguousarray(np.asarray(Image.open(path).convert('RGB'))[:, :, ::-1])
        tasks.append((image, rng.random((5, *image.shape[:2])).astype(np.float32)))
    for name in CRF_PRESETS:
        params = resolve_crf_params(name)
        dense_crf(*tasks[0], params)  # warm-up
        start = time.perf_counter()
        for image, scores in tasks:
            dense_crf(image, scores, params)
        per = 1000 * (time.perf_counter() - start) / len(tasks)
        print(f'{name}: in process {per:.1f} ms per CRF ({len(tasks)} CRFs)')
        for workers in args.workers:
            run_dense_crf(tasks[:workers], params, workers)  # starts the pool
            start = time.perf_counter()
            run_dense_crf(tasks, params, workers)
            per = 1000 * (time.perf_counter() - start) / len(tasks)
            print(f'{name}: pool of {workers}: {per:.1f} ms per CRF')


if __name__ == '__main__':
    main()

"""GPU readiness check: a few AMP training steps of the paper LPD model on random batches.

    python tools/check_cuda.py [--config configs/lpd_bcss.py] [--iters 5] [--batch N] [--dtype float16]

Builds the config's model with random weights (no checkpoint is loaded), wraps the config's
optimizer in mmengine's AmpOptimWrapper, sets MessageHub's 'iter' past the loss warm-up (so the
mask refiner and the diversity loss run) and trains ``--iters`` steps on random uint8 batches.
Prints each step's time and losses and the peak CUDA memory; then one test step (the paper
inference: TTA, per-pixel merge, fusion, both gatings, with the CRF when pydensecrf is installed)
on a random batch with masks. Exits 1 if a loss or a test score is not finite or a prediction
variant is missing, 0 otherwise. Without CUDA it prints "CUDA not available, skipped" and exits 0. It needs the
project's Python dependencies (mmengine, mmcv with ops, mmsegmentation) next to a CUDA torch.
"""
import argparse
import math
import os.path as osp
import sys
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=osp.join(ROOT, 'configs', 'lpd_bcss.py'))
    parser.add_argument('--iters', type=int, default=5, help='training steps (default 5)')
    parser.add_argument('--batch', type=int, help='batch size (default: the config\'s)')
    parser.add_argument('--input', type=int, default=224, dest='input_size')
    parser.add_argument('--dtype', default='float16', choices=['float16', 'bfloat16'],
                        help='autocast dtype of the AmpOptimWrapper')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print('CUDA not available, skipped')
        return 0
    from lpd_bench.bench.cases import (build_model, build_optim_wrapper, load_config, random_batch,
                                       set_train_iter)
    cfg = load_config(args.config)
    cfg.optim_wrapper['dtype'] = args.dtype
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        if cfg.model.test_cfg.get('crf'):
            print('pydensecrf not installed: the test step runs without the CRF')
            cfg.model.test_cfg['crf'] = False
    device = torch.device('cuda')
    model = build_model(cfg, device).train()
    optim_wrapper = build_optim_wrapper(model, cfg, device, amp=True)
    batch = args.batch or int(cfg.train_dataloader.batch_size)
    warmup_iters = int(cfg.model.decode_head.get('loss_warmup_iters', 0))
    print(f'{torch.cuda.get_device_name()}, torch {torch.__version__}: {args.config}, batch {batch}, '
          f'input {args.input_size}, AMP {args.dtype}, iter {warmup_iters}+ (after the loss warm-up)')
    torch.cuda.reset_peak_memory_stats()
    finite = True
    for step in range(args.iters):
        data = random_batch(batch, args.input_size, int(cfg.model.decode_head.num_classes), seed=step)
        set_train_iter(warmup_iters + step)
        torch.cuda.synchronize()
        start = time.perf_counter()
        log_vars = model.train_step(data, optim_wrapper)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        values = {k: float(v) for k, v in log_vars.items()}
        finite &= all(math.isfinite(v) for v in values.values())
        print(f'step {step}: {seconds:.3f} s, ' + ', '.join(f'{k}={v:.4g}' for k, v in values.items()))
    print(f'peak CUDA memory allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB')
    finite &= test_step(model, cfg, batch, args)
    if not finite:
        print('FAILED: a loss is not finite')
        return 1
    print('OK: all losses finite')
    return 0


def test_step(model, cfg, batch, args) -> bool:
    """One ``model.test_step`` on a random batch with masks; True when every prediction variant
    is there and the scores are finite."""
    from lpd_bench.bench.cases import random_batch
    model.eval()
    data = random_batch(batch, args.input_size, int(cfg.model.decode_head.num_classes),
                        seed=args.iters, with_masks=True)
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        samples = model.test_step(data)
    torch.cuda.synchronize()
    variants = ['oracle', 'predicted'] + (['oracle_crf', 'predicted_crf']
                                          if cfg.model.test_cfg.get('crf') else [])
    missing = [v for v in variants if f'pred_sem_seg_{v}' not in samples[0]]
    finite = all(bool(torch.isfinite(s.seg_logits.data).all()) for s in samples)
    print(f'test step: {time.perf_counter() - start:.3f} s for {len(samples)} images, variants '
          f'{variants}, missing {missing}, scores finite: {finite}, device of seg_logits: '
          f'{samples[0].seg_logits.data.device}')
    return finite and not missing


if __name__ == '__main__':
    sys.exit(main())

"""Integrated-gradient throughput (windows x cells x steps per second): the fast path (conv1 once per window, only the
tail per step) against the naive one (whole network per step), at equal completeness error, in one run.

    python tests/bench_attribution.py [--presets small paper] [--windows 2] [--cells 4] [--steps 50]
"""
import argparse, time

import numpy as np


def bench(preset_name, num_windows, num_cells, steps):
    from retina_nbdev.core import seed_everything
    from retina_nbdev.models import bn_cnn
    from retina_nbdev.attribution import integrated_gradients
    seed_everything(0)
    model = bn_cnn(preset_name)
    windows = np.random.default_rng(0).standard_normal((num_windows, *model.input_shape[1:])).astype('float32')
    cells = list(range(num_cells))
    row = {}
    for method in ('fast', 'naive'):
        integrated_gradients(model, windows[:1], cells=cells[:1], steps=2, method=method)  # trace and warm up
        start = time.perf_counter()
        result = integrated_gradients(model, windows, cells=cells, steps=steps, method=method)
        seconds = time.perf_counter() - start
        row[method] = dict(rate=num_windows * num_cells * (steps + 1) / seconds, error=result.completeness_error, seconds=seconds)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--presets', nargs='+', default=['small', 'paper'])
    parser.add_argument('--windows', type=int, default=2)
    parser.add_argument('--cells', type=int, default=4)
    parser.add_argument('--steps', type=int, default=50)
    args = parser.parse_args()
    for name in args.presets:
        row = bench(name, args.windows, args.cells, args.steps)
        fast, naive = row['fast'], row['naive']
        print(f"{name:6s} {args.windows} windows x {args.cells} cells x {args.steps + 1} points: fast {fast['rate']:9.1f}/s "
              f"(completeness error {fast['error']:.2e}), naive {naive['rate']:8.1f}/s (error {naive['error']:.2e}); "
              f"speed-up {fast['rate'] / naive['rate']:.1f}x", flush=True)


if __name__ == '__main__':
    main()

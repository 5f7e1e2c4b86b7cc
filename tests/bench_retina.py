"""Benchmark of the in-silico retina: simulated seconds per wall-clock second at the `small` and `paper` sizes.

Run by `make bench` as `python tests/bench_retina.py`. Targets: `small` at least 50x
real time; a 60-minute `paper` recording (50x50 px, 24 cells) in under 5 minutes. By default the paper size simulates
a 10-minute stretch and extrapolates linearly to 60 minutes (the simulator runs in fixed-size chunks over time, so its
cost is linear in the length); `--paper-seconds 3600` runs the full hour.
"""
import argparse, resource, sys, time

from retina_nbdev.core import get_preset
from retina_nbdev.retina import Retina, natural_movie, smooth_counts


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bench(preset_name, seconds, seed=0):
    "Time the stimulus, the noiseless rates and the spikes of `seconds` of natural movie; return a dict of timings."
    preset = get_preset(preset_name)
    retina = Retina(preset=preset, seed=seed)
    frames = int(seconds * 100)
    t0 = time.perf_counter(); movie = natural_movie(frames, preset.pixels, seed=seed)
    t1 = time.perf_counter(); rate = retina.rates(movie)
    t2 = time.perf_counter(); smooth_counts(retina.spikes(rate, 1, seed=seed)[0], axis=0)
    t3 = time.perf_counter()
    return dict(preset=preset_name, pixels=preset.pixels, cells=preset.num_cells, seconds=seconds,
                movie=t1 - t0, rates=t2 - t1, spikes=t3 - t2, total=t3 - t0)


def report(r):
    speed = r['seconds'] / r['total']
    print(f"{r['preset']:>5} ({r['pixels']}x{r['pixels']} px, {r['cells']} cells): {r['seconds']:.0f} s simulated in "
          f"{r['total']:.1f} s (movie {r['movie']:.1f} s, rates {r['rates']:.1f} s, spikes {r['spikes']:.1f} s) = "
          f"{speed:.0f}x real time (rates alone {r['seconds'] / r['rates']:.0f}x); peak memory so far {peak_rss_mb():.0f} MB")
    return speed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--small-seconds', type=float, default=300, help='seconds simulated at the small size')
    parser.add_argument('--paper-seconds', type=float, default=600, help='seconds simulated at the paper size (3600 = full hour)')
    args = parser.parse_args(argv)
    bench('tiny', 10)  # warm-up: imports and first-call costs
    small = report(bench('small', args.small_seconds))
    print(f"small: {'meets' if small >= 50 else 'MISSES'} the 50x real-time target")
    paper = bench('paper', args.paper_seconds)
    report(paper)
    hour = paper['total'] * 3600 / args.paper_seconds
    how = 'measured' if args.paper_seconds >= 3600 else f"extrapolated linearly from {args.paper_seconds:.0f} s"
    print(f"paper: a 60-minute recording's training movie takes {hour / 60:.1f} min ({how}); "
          f"{'meets' if hour < 300 else 'MISSES'} the 5-minute target")
    print(f"peak memory (ru_maxrss): {peak_rss_mb():.0f} MB; the paper movie itself is "
          f"{args.paper_seconds * 100 * 50 * 50 * 4 / 2**20:.0f} MB of float32")


if __name__ == '__main__':
    sys.exit(main())

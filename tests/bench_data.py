"""Lazy windows (`retina_nbdev.windows.window_dataset`): windows per second over one shuffled epoch, and how much the
process's peak memory grows meanwhile, against what the materialised windows would take.

    python tests/bench_data.py [--frames 20000] [--side 24] [--history 40]

Prints the figures; asserts nothing (they depend on the machine). The notebook `01_data` checks the logical fact
behind them: the pipeline's graph holds neither a copy of the frames nor a tensor of all windows. On the 2-core
development machine the defaults (the `small` preset's frame size) gave 28,000 to 76,000 windows/s, from run to run.
"""
import argparse, resource, sys, time


def peak_rss_mb():
    "The process's peak resident memory so far, in MB (`ru_maxrss` is KB on Linux, bytes on macOS)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == 'darwin' else 2**10)


def bench(num_frames, side, history, batch_size=256):
    from retina_nbdev.windows import window_dataset  # the library first: it quiets TensorFlow's start-up
    import tensorflow as tf
    frames = tf.random.stateless_normal((num_frames, side, side), seed=(0, 0))
    targets = tf.random.stateless_uniform((num_frames - history, 16), seed=(0, 1))
    before = peak_rss_mb()
    epochs = window_dataset(frames, history, targets, batch_size=batch_size, shuffle=True)
    for x, y in epochs: pass  # warm-up: traces the map function
    start = time.perf_counter()
    count = sum(int(x.shape[0]) for x, y in epochs)
    seconds = time.perf_counter() - start
    return dict(windows=count, seconds=seconds, frames_mb=frames.numpy().nbytes / 2**20, grew_mb=peak_rss_mb() - before,
                materialised_mb=(num_frames - history) * side * side * history * 4 / 2**20)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=20_000)
    parser.add_argument('--side', type=int, default=24)
    parser.add_argument('--history', type=int, default=40)
    args = parser.parse_args()
    r = bench(args.frames, args.side, args.history)
    print(f"lazy windows, {args.frames:,} frames of {args.side}x{args.side}, history {args.history}: "
          f"{r['windows'] / r['seconds']:,.0f} windows/s over one shuffled epoch; frames {r['frames_mb']:.0f} MB; "
          f"peak memory grew {r['grew_mb']:.0f} MB ({r['grew_mb'] / r['materialised_mb']:.0%} of the "
          f"{r['materialised_mb']:,.0f} MB the windows would take)", flush=True)
    return r


if __name__ == '__main__':
    main()

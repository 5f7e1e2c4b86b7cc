"""Layer collapse on the SynFlow paper's VGG-16 (CIFAR-100 shaped, reference init): the critical compression of each
method, the compression at which it first empties a layer (inf: none up to the maximal compression).

    python tests/bench_pruning.py [--methods random magnitude snip grasp synflow] [--rounds 100] [--batches 2]

SNIP and GraSP score with data; with no CIFAR-100 here (nothing is downloaded), they get a few batches of random
32x32x3 images with random labels, which is what "data-free" comparisons can offer them. Takes ~25 CPU-minutes
single-threaded (SynFlow's 100 rounds, bisected over the compression, dominate). For comparison, the paper's Fig. 1
(VGG-16 on CIFAR-100): magnitude pruning collapses near 10^2.75, SynFlow never before the maximal compression.
"""
import argparse, math, time

import numpy as np


def random_batches(num_batches, batch_size=32, num_classes=100, seed=0):
    "Random CIFAR-shaped images with random one-hot labels."
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch_size, 32, 32, 3)).astype('float32'),
             np.eye(num_classes, dtype='float32')[rng.integers(0, num_classes, batch_size)]) for _ in range(num_batches)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--methods', nargs='+', default=['random', 'magnitude', 'snip', 'grasp', 'synflow'])
    parser.add_argument('--rounds', type=int, default=100, help='SynFlow rounds')
    parser.add_argument('--batches', type=int, default=2, help='random batches for SNIP and GraSP')
    parser.add_argument('--steps', type=int, default=6, help='bisection halvings for iterative methods')
    args = parser.parse_args()
    import keras
    from retina_nbdev.pruning import vgg16
    from retina_nbdev.collapse import critical_compression, maximal_compression
    model, data = vgg16(), random_batches(args.batches)
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    print(f"VGG-16 (lottery, CIFAR-100 shape, kaiming normal): maximal compression {maximal_compression(model):,.0f}x")
    print(f"{'method':<10} {'critical':>12} {'log10':>6} {'seconds':>8}")
    for method in args.methods:
        start = time.perf_counter()
        rounds = args.rounds if method == 'synflow' else 1
        critical = critical_compression(model, method, rounds=rounds, data=data, loss=loss, steps=args.steps)
        print(f"{method:<10} {critical:>12,.1f} {math.log10(critical):>6.2f} {time.perf_counter() - start:>8.1f}", flush=True)


if __name__ == '__main__':
    main()

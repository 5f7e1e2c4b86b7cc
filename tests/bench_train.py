"""Training throughput of the BN-CNN: ours (chunked, conv1 by FFT) vs a plain Keras fit on materialised windows vs
the same architecture in PyTorch; and the peak memory of training on a 60-minute paper-size recording, as a
multiple of its frames (the recording is written by one process and trained on in another, so that the peak is
the training's own). It runs at the paper preset's batch of 1,000 and at 5,000, with the movies held in float32, and
at 5,000 with them in float16 (`load_recording(..., dtype='float16')`). On the 2-core development machine: 1.38x,
1.73x and 1.22x the float32 frames (3.31 GiB); before the loader held the movie once, 3.31x. Throughput is measured
at each preset's batch; prediction (`predict_chunked`, compiled once per model) against the same chunks run
eagerly, in samples per second (2.5x at `small`).

    python tests/bench_train.py [--presets small paper] [--skip-memory] [--seconds 20]

PyTorch lives only in the benchmark's own environment (`make bench-env` makes `.venv-bench` with the CPU build); it
is never a dependency of the library. Prints samples per second per implementation and the ratios, in one run.
"""
import argparse, json, os, subprocess, sys, tempfile, textwrap, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH_PYTHON = ROOT/'.venv-bench'/'bin'/'python'


def _movie(preset, num_samples, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((num_samples + preset.history, preset.pixels, preset.pixels)).astype('float32')
    rates = rng.poisson(2.0, (num_samples, preset.num_cells)).astype('float32')
    return frames, rates


def bench_ours(preset, batch_size, seconds):
    "Samples/s of our training step: chunks of consecutive samples, conv1 by FFT, the rest per sample."
    import keras, tensorflow as tf
    from retina_nbdev.models import bn_cnn
    from retina_nbdev.chunked import make_train_step, gather_chunks, chunk_starts
    chunk_length = min(500, batch_size // 4)
    frames, rates = _movie(preset, 20 * batch_size)
    frames, rates = tf.constant(frames), tf.constant(rates)
    model = bn_cnn(preset)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.Poisson())
    step = make_train_step(model)
    starts = chunk_starts(0, 20 * batch_size, chunk_length, seed=0)
    per_batch = batch_size // chunk_length
    batches = [starts[i:i + per_batch] for i in range(0, len(starts) - per_batch + 1, per_batch)]
    step(*gather_chunks(frames, rates, batches[0], chunk_length, preset.history))  # trace
    done, start = 0, time.perf_counter()
    for batch in batches * 10:
        step(*gather_chunks(frames, rates, batch, chunk_length, preset.history)); done += batch_size
        if time.perf_counter() - start > seconds: break
    return done / (time.perf_counter() - start)


def bench_predict(preset, seconds, chunk_length=256):
    "Samples/s of prediction: `predict_chunked` (compiled once per model) vs the same chunks through eager `chunked_forward`."
    import tensorflow as tf
    from retina_nbdev.models import bn_cnn
    from retina_nbdev.chunked import predict_chunked, chunked_forward, model_tail
    frames, _ = _movie(preset, 20 * chunk_length)
    model, span = bn_cnn(preset), chunk_length + preset.history - 1
    tail, chunks = model_tail(model), [tf.constant(frames[None, i:i + span]) for i in range(0, 19 * chunk_length, chunk_length)]
    def rate(predict):
        predict(); done, start = 0, time.perf_counter()  # the first call traces
        while time.perf_counter() - start < seconds: predict(); done += 19 * chunk_length
        return done / (time.perf_counter() - start)
    compiled = rate(lambda: predict_chunked(model, frames, chunk_length=chunk_length, stop=19 * chunk_length))
    eager = rate(lambda: [chunked_forward(model, chunk, tail).numpy() for chunk in chunks])
    return compiled, eager


def bench_plain(preset, batch_size, seconds):
    "Samples/s of the straightforward implementation: every window materialised, plain `model.fit`."
    import keras
    from retina_nbdev.models import bn_cnn
    probe = 2 * batch_size
    frames, rates = _movie(preset, probe)
    index = np.arange(probe)[:, None] + np.arange(preset.history)
    windows = np.ascontiguousarray(np.moveaxis(frames[index], 1, -1))  # (N, H, W, history), all materialised
    model = bn_cnn(preset)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.Poisson())
    model.fit(windows[:batch_size], rates[:batch_size], batch_size=batch_size, epochs=1, verbose=0)  # warm up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.fit(windows, rates, batch_size=batch_size, epochs=1, verbose=0); done += probe
    return done / (time.perf_counter() - start)


TORCH_TWIN = textwrap.dedent('''
    import json, sys, time, torch, torch.nn as nn
    torch.set_num_threads(int(sys.argv[8]))
    pixels, history, c1, k1, c2, k2, cells, batch, seconds = map(float, sys.argv[1:8] + sys.argv[9:11])
    pixels, history, c1, k1, c2, k2, cells, batch = map(int, (pixels, history, c1, k1, c2, k2, cells, batch))
    s1, s2 = pixels - k1 + 1, pixels - k1 - k2 + 2
    class UnitBN(nn.Module):
        def __init__(self, shape): super().__init__(); self.bn = nn.BatchNorm1d(int(torch.tensor(shape).prod()), eps=1e-3, momentum=0.01)
        def forward(self, x): return self.bn(x.flatten(1)).view_as(x)
    class Noise(nn.Module):
        def forward(self, x): return x + 0.05 * torch.randn_like(x) if self.training else x
    model = nn.Sequential(nn.Conv2d(history, c1, k1), UnitBN((c1, s1, s1)), Noise(), nn.ReLU(),
                          nn.Conv2d(c1, c2, k2), UnitBN((c2, s2, s2)), Noise(), nn.ReLU(), nn.Flatten(),
                          nn.Linear(c2 * s2 * s2, cells, bias=False), nn.BatchNorm1d(cells, eps=1e-3, momentum=0.01), nn.Softplus())
    optimizer = torch.optim.Adam(model.parameters(), 1e-3, weight_decay=0)
    loss_fn = nn.PoissonNLLLoss(log_input=False)
    x, y = torch.randn(batch, history, pixels, pixels), torch.poisson(torch.full((batch, cells), 2.0))
    def step():
        optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); optimizer.step()
    step(); done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds: step(); done += batch
    print(json.dumps(dict(samples_per_second=done / (time.perf_counter() - start), torch=torch.__version__)))
''')


def bench_torch(preset, batch_size, seconds, threads):
    "Samples/s of the same architecture in PyTorch (CPU build, in `.venv-bench`), windows given as a tensor."
    if not BENCH_PYTHON.exists(): return None
    args = [preset.pixels, preset.history, preset.conv1_channels, preset.conv1_kernel, preset.conv2_channels,
            preset.conv2_kernel, preset.num_cells, threads, batch_size, seconds]
    out = subprocess.run([str(BENCH_PYTHON), '-c', TORCH_TWIN, *map(str, args)], capture_output=True, text=True)
    if out.returncode: print(out.stderr[-2000:]); return None
    return json.loads(out.stdout.strip().splitlines()[-1])['samples_per_second']


GENERATE_SCRIPT = textwrap.dedent('''
    import sys, numpy as np
    from pathlib import Path
    from retina_nbdev.core import PRESETS
    from retina_nbdev.data import write_recording
    preset, minutes, path = PRESETS['paper'], float(sys.argv[1]), Path(sys.argv[2])
    frames = int(minutes * 60 * 100)
    rng = np.random.default_rng(0)
    train = dict(stimulus=np.sign(rng.standard_normal((frames, 50, 50), dtype=np.float32)),
                 firing_rate_10ms=rng.random((preset.num_cells, frames), dtype=np.float32) * 10)
    train['binned'] = np.zeros_like(train['firing_rate_10ms'])
    length = preset.nskip + preset.history + 1000  # the test block must outlast the skipped transient
    test = dict(stimulus=train['stimulus'][:length].copy(), firing_rate_10ms=train['firing_rate_10ms'][:, :length],
                binned=train['binned'][:, :length], repeats=np.stack([train['firing_rate_10ms'][:, :length]] * 2, 1))
    write_recording(path, train, test)
''')

MEMORY_SCRIPT = textwrap.dedent('''
    import resource, sys, time
    from pathlib import Path
    from retina_nbdev.core import PRESETS
    from retina_nbdev.data import load_recording
    from retina_nbdev.models import bn_cnn
    from retina_nbdev.train import fit, TrainingConfig
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # bytes (Linux reports KiB)
    preset, path, folder, batch, dtype = PRESETS['paper'], Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    model = bn_cnn('paper'); model.predict(__import__('numpy').zeros((1, 50, 50, 40), 'float32'), verbose=0)
    base = peak()
    recording = load_recording(path, history=preset.history, nskip=preset.nskip, dtype=dtype)
    frames = sum(int(f.shape.num_elements()) * 4 for f in recording.frames.values())  # as float32
    loaded = peak()
    start = time.perf_counter()
    fit(model, recording, folder/'run', TrainingConfig(epochs=1, batch_size=batch, max_batches=3), progress=False)
    print(f"MEMORY {frames} {base} {loaded} {peak()} {time.perf_counter() - start:.1f}")
''')


def bench_memory(minutes, batch_size=1000, dtype='float32'):
    "Peak resident memory of training on a `minutes`-long paper-size recording (written by another process), in bytes."
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)/'paper.h5'
        out = subprocess.run([sys.executable, '-c', GENERATE_SCRIPT, str(minutes), str(path)], capture_output=True, text=True)
        if out.returncode: print(out.stderr[-3000:]); return None
        out = subprocess.run([sys.executable, '-c', MEMORY_SCRIPT, str(path), folder, str(batch_size), dtype], capture_output=True, text=True)
    line = next((l for l in out.stdout.splitlines() if l.startswith('MEMORY')), None)
    if line is None: print(out.stderr[-3000:]); return None
    frames, base, loaded, peak = (int(v) for v in line.split()[1:5])
    return dict(frames=frames, base=base, loaded=loaded, peak=peak, batch_size=batch_size, dtype=dtype)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--presets', nargs='*', default=['small', 'paper'])
    parser.add_argument('--seconds', type=float, default=20, help='timed seconds per implementation')
    parser.add_argument('--skip-memory', action='store_true')
    parser.add_argument('--minutes', type=float, default=60, help='length of the recording for the memory test')
    parser.add_argument('--memory-runs', nargs='*', default=['1000:float32', '5000:float32', '5000:float16'],
                        help="batch size:frame dtype of each memory test (1000: the paper preset's batch on a CPU)")
    args = parser.parse_args()
    from retina_nbdev.core import PRESETS
    threads = int(os.environ.get('RETINA_THREADS') or os.cpu_count())
    results = {}
    for name in args.presets:
        preset = PRESETS[name]
        batch = preset.batch_size
        row = dict(ours=bench_ours(preset, batch, args.seconds), plain=bench_plain(preset, batch, args.seconds),
                   torch=bench_torch(preset, batch, args.seconds, threads))
        results[name] = row
        torch_text = f"{row['torch']:8.1f}" if row['torch'] else '     n/a (make bench-env)'
        print(f"{name:6s} batch {batch}: ours {row['ours']:8.1f}  plain {row['plain']:8.1f}  torch {torch_text}  samples/s;"
              f"  ours/plain {row['ours'] / row['plain']:.1f}x" + (f"  ours/torch {row['ours'] / row['torch']:.1f}x" if row['torch'] else ''),
              flush=True)
        compiled, eager = bench_predict(preset, args.seconds / 2)
        results[name].update(predict_compiled=compiled, predict_eager=eager)
        print(f"{name:6s} prediction: compiled {compiled:8.1f}  eager {eager:8.1f}  samples/s;  {compiled / eager:.1f}x", flush=True)
    if not args.skip_memory:
        for run in args.memory_runs:
            batch_size, dtype = int(run.split(':')[0]), run.split(':')[1]
            memory = bench_memory(args.minutes, batch_size, dtype)
            if memory:
                gib = lambda key: memory[key] / 2**30
                print(f"memory: {args.minutes:g}-minute paper recording, {gib('frames'):.2f} GiB of frames in float32, held as "
                      f"{dtype}, batch {batch_size}: peak RSS {gib('peak'):.2f} GiB = {memory['peak'] / memory['frames']:.2f}x the frames "
                      f"(goal <= 1.5x); TensorFlow and the model {gib('base'):.2f} GiB, loading added "
                      f"{gib('loaded') - gib('base'):.2f} GiB, training {gib('peak') - gib('loaded'):.2f} GiB; all windows "
                      f"materialised would be {gib('frames') * 40:.0f} GiB", flush=True)
            results[f'memory_{batch_size}_{dtype}'] = memory
    return results


if __name__ == '__main__':
    main()

"""Wall time of the study at the `tiny` preset: a first run, then a second run of the finished study (every stage
skipped), through the library and through the CLI; and the local executor reading back finished jobs.

    python tests/bench_pipeline.py [--preset tiny]

Prints the figures; asserts nothing (they depend on the machine). The logical facts behind them are tested: a second
run rewrites no manifest and reports every stage skipped (`10a_pipeline`, tests/test_pipeline.py), and an executor
given finished jobs returns their stored records without running them (`11_distributed`).
"""
import argparse, subprocess, sys, tempfile, time
from pathlib import Path

CLI = Path(sys.executable).parent/'retina-nbdev'


def timed(function):
    start = time.perf_counter(); function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--preset', default='tiny')
    args = parser.parse_args()
    from retina_nbdev.pipeline import RunConfig, run_pipeline
    from retina_nbdev.data import toy_recording
    from retina_nbdev.distributed import Job, LocalExecutor
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        options = dict(epochs=2, model_seeds=2)  # what `--epochs 2 --model-seeds 2` asks of the CLI
        config = RunConfig(folder/'study', args.preset, seed=0, progress=False, options=options)
        first, second = timed(lambda: run_pipeline(config)), timed(lambda: run_pipeline(config))
        cli = [str(CLI), 'run', '--preset', args.preset, '--out', str(config.out), '--epochs', '2', '--model-seeds', '2', '--quiet']
        again = timed(lambda: subprocess.run(cli, check=True))
        print(f"{args.preset} study: first run {first:.1f} s; second run (every stage skipped) {second:.2f} s in the library, "
              f"{again:.2f} s by `retina-nbdev run` (a fresh process)", flush=True)
        toy = toy_recording(folder/'toy.h5', train_frames=1000, test_frames=200)
        training = dict(recording=str(toy), preset='tiny', model='cnn', epochs=1, out=str(folder/'models'))
        jobs = [Job(f'seed{seed}', 'retina_nbdev.pipeline:train_job', training, seed) for seed in range(2)]
        first = timed(lambda: LocalExecutor().map(jobs, folder/'jobs'))
        second = timed(lambda: LocalExecutor().map(jobs, folder/'jobs'))
        print(f"local executor, {len(jobs)} training jobs: {first:.1f} s; again, finished (read back): {second:.3f} s", flush=True)


if __name__ == '__main__':
    main()

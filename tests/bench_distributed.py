"""Wall time of the `small` pruning grid: the local executor (one worker process, sequential) against Ray with 2 workers
on this machine, in one run, as a ratio.

    python tests/bench_distributed.py [--preset small] [--methods random synflow ...]
"""
import argparse, os, tempfile, time
from pathlib import Path


def grid_jobs(preset_name, folder, methods=None):
    from retina_nbdev.core import get_preset
    from retina_nbdev.retina import simulate_experiment
    from retina_nbdev.pruning_study import pruning_grid, pruning_runs, run_cost
    from retina_nbdev.distributed import Job
    preset = get_preset(preset_name)
    recording = simulate_experiment(preset, 'naturalscene', seed=0, out=folder/'data')
    grid = pruning_grid(preset)
    if methods: grid['methods'] = tuple(methods)
    common = dict(recording=str(recording), preset=preset.name, grid=grid)
    return lambda out: [Job(f"seed{s}-{m}-{c or 'all'}", 'retina_nbdev.analysis_stages:prune_job', dict(common, method=m, compression=c, out=str(out/'runs')), s,
                            cost=run_cost(grid, m))
                        for s, m, c in pruning_runs(grid)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--preset', default='small')
    parser.add_argument('--methods', nargs='+', default=None)
    args = parser.parse_args()
    os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0')
    from retina_nbdev.distributed import LocalExecutor, RayExecutor
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        jobs = grid_jobs(args.preset, folder, args.methods)
        timings = {}
        for name, executor in (('local, 1 worker', LocalExecutor(workers=1)), ('ray, 2 workers', RayExecutor(workers=2))):
            start = time.perf_counter()
            try: records = executor.map(jobs(folder/name.split(',')[0]), folder/name.split(',')[0])
            finally: executor.shutdown()
            timings[name] = time.perf_counter() - start
            print(f"{args.preset} pruning grid, {len(records)} jobs, {name}: {timings[name]:.1f} s", flush=True)
        local, ray = timings.values()
        print(f"speed-up of Ray with 2 workers over the local sequential executor: {local / ray:.2f}x")


if __name__ == '__main__':
    main()

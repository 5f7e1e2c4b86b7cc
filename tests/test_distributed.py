"""The study's independent jobs on Ray: same numbers as the local executor, two nodes on loopback, a killed worker.

The local results are those of the session's `tiny_study` (tests/conftest.py): a run here copies its stage folders and
re-runs one stage with Ray, with the same flags, so the two must agree exactly."""
import json, os, signal, socket, subprocess, sys, time
from pathlib import Path

import pytest

from conftest import CLI, cli, copy_stages

ray = pytest.importorskip('ray')

RAY = Path(sys.executable).parent/'ray'
ENV = {**os.environ, 'RAY_USAGE_STATS_ENABLED': '0'}


def _cli(command, out, flags, *more, env=None):
    done = cli(command, '--out', out, *flags, '--quiet', *more, env=env or ENV)
    assert done.returncode == 0, done.stderr[-3000:]


def _grid(out):
    import pandas as pd
    return pd.read_csv(out/'prune'/'pruning.csv').drop(columns='seconds'), json.loads((out/'prune'/'manifest.json').read_text())


@pytest.fixture(scope='module')
def local_grid(tiny_study):
    "The tiny pruning grid as the local executor ran it in the shared study."
    return _grid(tiny_study)


def _histories(folder):
    return {p.name: [{k: v for k, v in row.items() if k != 'seconds'} for row in json.loads(p.read_text())] for p in sorted(folder.glob('*_history.json'))}


def test_ray_training_and_attribution_give_the_local_results(tiny_study, study_flags, tmp_path):
    import numpy as np
    _cli('train', copy_stages(tiny_study, tmp_path/'train', ('simulate',)), study_flags, '--executor', 'ray', '--workers', '2')
    assert _histories(tmp_path/'train'/'train') == _histories(tiny_study/'train') and len(_histories(tiny_study/'train')) == 2  # cnn, ln
    remote = copy_stages(tiny_study, tmp_path/'remote', ('simulate', 'train', 'phenomena'))
    _cli('attribute', remote, study_flags, '--executor', 'ray', '--workers', '2')
    files = sorted(p.name for p in (tiny_study/'attribute').glob('*.npz'))  # the study's own attribute stage ran locally
    assert files and files == sorted(p.name for p in (remote/'attribute').glob('*.npz'))
    for name in files:
        with np.load(tiny_study/'attribute'/name) as a, np.load(remote/'attribute'/name) as b:
            assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
    jobs = json.loads((remote/'attribute'/'jobs.json').read_text())
    assert sorted(f"{j['key'].replace('-', '_')}.npz" for j in jobs) == files and {j['node'] for j in jobs} != {'local'}


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


PINNED_DRIVER = '''
import json, sys
from retina_nbdev.distributed import Job, RayExecutor
address, out, jobs = sys.argv[1], sys.argv[2], [Job(**job) for job in json.loads(sys.argv[3])]
executor = RayExecutor(address)
try:
    records = executor.map(jobs, out)
    pins = {name: node['NodeID'] for node in executor.ray.nodes() if node['Alive'] for name in node['Resources'] if name.startswith('pin_')}
finally: executor.shutdown()
print(json.dumps(dict(records=records, pins=pins)))
'''


def test_two_nodes_on_loopback(tiny_study, local_grid, tmp_path):
    "Two Ray nodes, each with its own custom resource (`ray start --resources`); a job asking for one runs on that node."
    from retina_nbdev.run_inputs import recording_of
    from retina_nbdev.pruning_study import pruning_grid
    # a fresh HOME: an auth token another Ray session left in ~/.ray must not meet a cluster that has none
    port, env = _free_port(), {**ENV, 'HOME': str(tmp_path/'home')}
    common = ['--node-ip-address=127.0.0.1', '--num-cpus=1', '--disable-usage-stats']
    config = dict(recording=str(recording_of({'simulate': tiny_study/'simulate'})), preset='tiny', grid=pruning_grid('tiny'), out=str(tmp_path/'runs'))
    runs = {'pin_head': ('dense', 1.0), 'pin_worker': ('random', 10.0)}  # two runs of the study's pruning grid, one per node
    jobs = [dict(key=f'seed0-{method}-{compression}', function='retina_nbdev.analysis_stages:prune_job', config=dict(config, method=method, compression=compression),
                 seed=0, resources={pin: 1}) for pin, (method, compression) in runs.items()]
    try:
        subprocess.run([str(RAY), 'start', '--head', f'--port={port}', '--include-dashboard=false', '--resources={"pin_head": 1}', *common],
                       check=True, env=env, capture_output=True, timeout=120)
        subprocess.run([str(RAY), 'start', f'--address=127.0.0.1:{port}', '--resources={"pin_worker": 1}', *common],
                       check=True, env=env, capture_output=True, timeout=120)
        done = subprocess.run([sys.executable, '-c', PINNED_DRIVER, f'127.0.0.1:{port}', str(tmp_path/'jobs'), json.dumps(jobs)],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        subprocess.run([str(RAY), 'stop', '--force'], env=env, capture_output=True, timeout=120)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    records, pins = result['records'], result['pins']
    assert sorted(pins) == sorted(runs) and len(set(pins.values())) == 2  # two nodes, each with its resource
    assert [record['node'] for record in records] == [pins[next(iter(job['resources']))] for job in jobs]  # each ran where it was pinned
    local = local_grid[0]
    for record, (method, compression) in zip(records, runs.values()):
        [row] = record['result']['rows']
        expected = local[(local.method == method) & (local.compression == compression)]
        assert len(expected) == 1 and row['kept'] == expected.kept.item() and row['r'] == pytest.approx(expected.r.item(), rel=1e-12)  # the local numbers


def test_ray_grid_with_a_killed_worker_gives_the_local_results(local_grid, tiny_study, study_flags, tmp_path):
    "The pruning grid on Ray (an embedded cluster, 2 workers), one worker killed mid-job: retried, every number the local one."
    out = copy_stages(tiny_study, tmp_path/'killed', ('simulate', 'train'))
    driver = subprocess.Popen([str(CLI), 'prune', '--out', str(out), *study_flags, '--quiet', '--executor', 'ray', '--workers', '2'],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline, running = time.time() + 300, []
        while not running and driver.poll() is None and time.time() < deadline:  # wait for a job's `.running` marker
            running = [json.loads(p.read_text()) for p in out.glob('.work/prune-*/jobs/*.running')]; time.sleep(0.05)
        assert running, f"no job started: {driver.communicate()[1][-2000:] if driver.poll() is not None else 'timeout'}"
        victim = running[0]
        os.kill(victim['pid'], signal.SIGKILL)  # at once: the worker that wrote the marker is running that job now
        _, stderr = driver.communicate(timeout=900)
        assert driver.returncode == 0, stderr[-3000:]
    finally:
        if driver.poll() is None: driver.kill()
    (local, local_manifest), (table, manifest) = local_grid, _grid(out)
    jobs = json.loads((out/'prune'/'jobs.json').read_text())
    assert sorted(j['key'] for j in jobs) == sorted(set(j['key'] for j in jobs)) and len(jobs) == manifest['summary']['jobs']
    assert victim['key'] in {j['key'] for j in jobs} and victim['pid'] not in {j['pid'] for j in jobs}  # retried elsewhere
    assert {j['node'] for j in jobs} != {'local'}  # Ray ran them
    assert manifest['summary'] == local_manifest['summary'] and len(local) == local_manifest['summary']['jobs'] + 1
    assert table.equals(local)  # every result present exactly once, with the numbers of the local executor's grid


def test_without_ray_the_error_says_how_to_install(monkeypatch):
    from retina_nbdev.distributed import get_executor
    monkeypatch.setitem(sys.modules, 'ray', None)  # as if Ray were not installed
    with pytest.raises(ValueError, match=r"pip install 'retina-nbdev\[ray\]'"): get_executor('ray')

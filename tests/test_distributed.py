"""The study's independent jobs on Ray: same numbers as the local executor, two nodes on loopback, a killed worker."""
import json, os, signal, socket, subprocess, sys, time
from pathlib import Path

import pytest

ray = pytest.importorskip('ray')

RAY = Path(sys.executable).parent/'ray'


CLI = Path(sys.executable).parent/'retina-nbdev'


FLAGS = ['--preset', 'tiny', '--epochs', '2', '--model-seeds', '2', '--quiet']
ENV = {**os.environ, 'RAY_USAGE_STATS_ENABLED': '0'}


def _cli(command, out, *flags, env=None):
    done = subprocess.run([str(CLI), command, '--out', str(out), *FLAGS, *flags], capture_output=True, text=True, timeout=900, env=env or ENV)
    assert done.returncode == 0, done.stderr[-3000:]


def _copy(base, out, stages):
    import shutil
    for stage in stages: shutil.copytree(base/stage, out/stage)
    return out


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
    "A tiny run through simulate, train (local executor) and phenomena, whose stage folders later runs reuse (same keys: they skip them)."
    out = tmp_path_factory.mktemp('grid')/'base'
    _cli('phenomena', out)
    return out


def _grid(out):
    import pandas as pd
    return pd.read_csv(out/'prune'/'pruning.csv').drop(columns='seconds'), json.loads((out/'prune'/'manifest.json').read_text())


@pytest.fixture(scope='module')
def local_grid(trained_run, tmp_path_factory):
    "The tiny pruning grid run by the local executor."
    out = _copy(trained_run, tmp_path_factory.mktemp('local')/'run', ('simulate', 'train'))
    _cli('prune', out)
    return _grid(out)


def _histories(folder):
    return {p.name: [{k: v for k, v in row.items() if k != 'seconds'} for row in json.loads(p.read_text())] for p in sorted(folder.glob('*_history.json'))}


def test_ray_grid_gives_the_local_summary(local_grid, trained_run, tmp_path):
    local, local_manifest = local_grid
    _cli('prune', _copy(trained_run, tmp_path/'ray', ('simulate', 'train')), '--executor', 'ray', '--workers', '2')
    remote, remote_manifest = _grid(tmp_path/'ray')
    assert local_manifest['summary'] == remote_manifest['summary'] and len(local) == local_manifest['summary']['jobs'] + 1
    assert local.equals(remote)  # every number of the tiny grid, exactly
    assert {j['node'] for j in json.load(open(tmp_path/'ray'/'prune'/'jobs.json'))} != {'local'}


def test_ray_training_over_seeds_and_attribution_give_the_local_results(trained_run, tmp_path):
    import numpy as np
    _cli('train', _copy(trained_run, tmp_path/'train', ('simulate',)), '--executor', 'ray', '--workers', '2')
    assert _histories(tmp_path/'train'/'train') == _histories(trained_run/'train') and len(_histories(trained_run/'train')) == 3
    local = _copy(trained_run, tmp_path/'local', ('simulate', 'train', 'phenomena'))
    remote = _copy(trained_run, tmp_path/'remote', ('simulate', 'train', 'phenomena'))
    _cli('attribute', local)
    _cli('attribute', remote, '--executor', 'ray', '--workers', '2')
    files = sorted(p.name for p in (local/'attribute').glob('*.npz'))
    assert files and files == sorted(p.name for p in (remote/'attribute').glob('*.npz'))
    for name in files:
        with np.load(local/'attribute'/name) as a, np.load(remote/'attribute'/name) as b:
            assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
    jobs = json.loads((remote/'attribute'/'jobs.json').read_text())
    assert sorted(f"{j['key'].replace('-', '_')}.npz" for j in jobs) == files and {j['node'] for j in jobs} != {'local'}


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def test_two_nodes_on_loopback(trained_run, tmp_path):
    # a fresh HOME: an auth token another Ray session left in ~/.ray must not meet a cluster that has none
    port, env = _free_port(), {**os.environ, 'RAY_USAGE_STATS_ENABLED': '0', 'HOME': str(tmp_path/'home')}
    common = ['--node-ip-address=127.0.0.1', '--num-cpus=1', '--disable-usage-stats']
    try:
        subprocess.run([str(RAY), 'start', '--head', f'--port={port}', '--include-dashboard=false', *common], check=True, env=env, capture_output=True, timeout=120)
        subprocess.run([str(RAY), 'start', f'--address=127.0.0.1:{port}', *common], check=True, env=env, capture_output=True, timeout=120)
        out = _copy(trained_run, tmp_path/'cluster', ('simulate', 'train'))
        _cli('prune', out, '--executor', 'ray', '--ray-address', f'127.0.0.1:{port}', env=env)
        jobs, manifest = json.loads((out/'prune'/'jobs.json').read_text()), json.loads((out/'prune'/'manifest.json').read_text())
        assert len({j['node'] for j in jobs}) == 2 and len(jobs) == manifest['summary']['jobs']  # tasks ran on both nodes
    finally:
        subprocess.run([str(RAY), 'stop', '--force'], env=env, capture_output=True, timeout=120)


def test_worker_killed_mid_grid_is_retried(local_grid, trained_run, tmp_path):
    out = _copy(trained_run, tmp_path/'killed', ('simulate', 'train'))
    driver = subprocess.Popen([str(CLI), 'prune', '--out', str(out), *FLAGS, '--executor', 'ray', '--workers', '2'],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline, running = time.time() + 300, []
        while not running and driver.poll() is None and time.time() < deadline:
            running = [json.loads(p.read_text()) for p in out.glob('.work/prune-*/jobs/*.running')]; time.sleep(0.05)
        assert running, f"no job started: {driver.communicate()[1][-2000:] if driver.poll() is not None else 'timeout'}"
        victim = running[0]
        time.sleep(1.0)  # into the job: importing, loading the recording, building the model
        os.kill(victim['pid'], signal.SIGKILL)
        _, stderr = driver.communicate(timeout=900)
        assert driver.returncode == 0, stderr[-3000:]
    finally:
        if driver.poll() is None: driver.kill()
    table, manifest = _grid(out)
    jobs = json.loads((out/'prune'/'jobs.json').read_text())
    assert sorted(j['key'] for j in jobs) == sorted(set(j['key'] for j in jobs)) and len(jobs) == manifest['summary']['jobs']
    assert victim['key'] in {j['key'] for j in jobs} and victim['pid'] not in {j['pid'] for j in jobs}  # retried elsewhere
    assert table.equals(local_grid[0])  # every result present exactly once, with the numbers of an undisturbed grid


def test_without_ray_the_error_says_how_to_install(monkeypatch):
    from retina_nbdev.distributed import get_executor
    monkeypatch.setitem(sys.modules, 'ray', None)  # as if Ray were not installed
    with pytest.raises(ValueError, match=r"pip install 'retina-nbdev\[ray\]'"): get_executor('ray')

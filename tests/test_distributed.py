"""The study's independent jobs on Ray: same numbers as the local executor, two nodes on loopback, a killed worker."""
import json, os, signal, socket, subprocess, sys, threading, time
from pathlib import Path

import pytest

ray = pytest.importorskip('ray')
from retina_nbdev.distributed import Job, RayExecutor

RAY = Path(sys.executable).parent/'ray'


CLI = Path(sys.executable).parent/'retina-nbdev'


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
    "A tiny run through simulate and train, whose stage folders later runs reuse (same keys: they skip them)."
    out = tmp_path_factory.mktemp('grid')/'base'
    done = subprocess.run([str(CLI), 'train', '--preset', 'tiny', '--out', str(out), '--epochs', '2', '--quiet'], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _prune(base, out, *flags, env=None):
    import shutil
    for stage in ('simulate', 'train'): shutil.copytree(base/stage, out/stage)
    done = subprocess.run([str(CLI), 'prune', '--preset', 'tiny', '--out', str(out), '--epochs', '2', '--quiet', *flags],
                          capture_output=True, text=True, timeout=900, env=env or {**os.environ, 'RAY_USAGE_STATS_ENABLED': '0'})
    assert done.returncode == 0, done.stderr[-3000:]
    import pandas as pd
    return pd.read_csv(out/'prune'/'pruning.csv').drop(columns='seconds'), json.loads((out/'prune'/'manifest.json').read_text())


def test_ray_grid_gives_the_local_summary(trained_run, tmp_path):
    local, local_manifest = _prune(trained_run, tmp_path/'local')
    remote, remote_manifest = _prune(trained_run, tmp_path/'ray', '--executor', 'ray', '--workers', '2')
    assert local_manifest['summary'] == remote_manifest['summary'] and len(local) == local_manifest['summary']['jobs'] + 1
    assert local.equals(remote)  # every number of the tiny grid, exactly
    assert {j['node'] for j in json.load(open(tmp_path/'ray'/'prune'/'jobs.json'))} != {'local'}


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
        _, manifest = _prune(trained_run, tmp_path/'cluster', '--executor', 'ray', '--ray-address', f'127.0.0.1:{port}', env=env)
        jobs = json.loads((tmp_path/'cluster'/'prune'/'jobs.json').read_text())
        assert len({j['node'] for j in jobs}) == 2 and len(jobs) == manifest['summary']['jobs']  # tasks ran on both nodes
    finally:
        subprocess.run([str(RAY), 'stop', '--force'], env=env, capture_output=True, timeout=120)


def test_killed_worker_is_retried(tmp_path):
    jobs = [Job(f'wait{s}', 'retina_nbdev.distributed:waiting_job', dict(seconds=2, folder=str(tmp_path/'started')), s) for s in range(6)]
    executor, records = RayExecutor(workers=2), []
    driver = threading.Thread(target=lambda: records.extend(executor.map(jobs, tmp_path/'out')))
    try:
        driver.start()
        deadline = time.time() + 120
        while not list((tmp_path/'started').glob('*.started')) and time.time() < deadline: time.sleep(0.05)
        victim = int(sorted((tmp_path/'started').glob('*.started'))[0].name.split('.')[1])
        os.kill(victim, signal.SIGKILL)
        driver.join(timeout=240)
        assert not driver.is_alive()
    finally: executor.shutdown()
    assert sorted(r['key'] for r in records) == sorted(j.key for j in jobs)  # every result present exactly once
    assert sorted(p.name for p in (tmp_path/'out'/'jobs').iterdir()) == sorted(f'{j.key}.json' for j in jobs)
    assert [r['result']['doubled'] for r in records] == [2 * s for s in range(6)]
    assert victim not in {r['pid'] for r in records}  # the killed job finished elsewhere


def test_without_ray_the_error_says_how_to_install(monkeypatch):
    from retina_nbdev.distributed import get_executor
    monkeypatch.setitem(sys.modules, 'ray', None)  # as if Ray were not installed
    with pytest.raises(ValueError, match=r"pip install 'retina-nbdev\[ray\]'"): get_executor('ray')

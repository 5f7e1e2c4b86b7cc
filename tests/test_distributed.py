"""The study's independent jobs on Ray: same numbers as the local executor, two nodes on loopback, a killed worker."""
import json, os, signal, socket, subprocess, sys, threading, time
from pathlib import Path

import pytest

ray = pytest.importorskip('ray')
from retina_nbdev.distributed import Job, LocalExecutor, RayExecutor, job_path

RAY = Path(sys.executable).parent/'ray'


@pytest.fixture(scope='module')
def recording(tmp_path_factory):
    from retina_nbdev.data import toy_recording
    return toy_recording(tmp_path_factory.mktemp('data')/'toy.h5', train_frames=1000, test_frames=200)


def _training_jobs(recording, seeds=(0, 1, 2)):
    return [Job(f'seed{s}', 'retina_nbdev.distributed:example_training_job', dict(recording=str(recording), epochs=1), s) for s in seeds]


def test_ray_gives_the_local_numbers(recording, tmp_path):
    jobs = _training_jobs(recording)
    local = LocalExecutor().map(jobs, tmp_path/'local')
    executor = RayExecutor(workers=2)
    try: remote = executor.map(jobs, tmp_path/'ray')
    finally: executor.shutdown()
    assert [r['result'] for r in remote] == [r['result'] for r in local]
    assert len({r['pid'] for r in remote}) >= 1 and all(r['node'] != 'local' for r in remote)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


DRIVER = '''
import json, sys
from retina_nbdev.distributed import Job, RayExecutor
jobs = [Job(f"wait{s}", "retina_nbdev.distributed:waiting_job", dict(seconds=3, folder=sys.argv[3]), s, num_cpus=1) for s in range(6)]
executor = RayExecutor(address=sys.argv[1])
records = executor.map(jobs, sys.argv[2])
print(json.dumps(sorted({r["node"] for r in records})))
'''


def test_two_nodes_on_loopback(tmp_path):
    port, env = _free_port(), {**os.environ, 'RAY_USAGE_STATS_ENABLED': '0'}
    common = ['--node-ip-address=127.0.0.1', '--num-cpus=1', '--disable-usage-stats']
    try:
        subprocess.run([str(RAY), 'start', '--head', f'--port={port}', '--include-dashboard=false', *common], check=True, env=env, capture_output=True, timeout=120)
        subprocess.run([str(RAY), 'start', f'--address=127.0.0.1:{port}', *common], check=True, env=env, capture_output=True, timeout=120)
        done = subprocess.run([sys.executable, '-c', DRIVER, f'127.0.0.1:{port}', str(tmp_path/'out'), str(tmp_path/'started')],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        nodes = json.loads(done.stdout.strip().splitlines()[-1])
        assert len(nodes) == 2, nodes  # tasks ran on both nodes
        manifests = [json.loads(p.read_text()) for p in (tmp_path/'out'/'jobs').glob('*.json')]
        assert len({m['node'] for m in manifests}) == 2 and len(manifests) == 6
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

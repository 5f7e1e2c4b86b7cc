"""The main job end to end: `retina-nbdev run --preset tiny`, resumption after SIGKILL, and bad input."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import h5py
import pytest

CLI = Path(sys.executable).parent/'retina-nbdev'
FLAGS = ['--epochs', '3', '--model-seeds', '2']  # the CNN from two seeds: the train stage fans out three jobs


def _cli(*args, **kwargs):
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, **kwargs)


def _without_timings(summary):
    return {k: v for k, v in summary.items() if k != 'timings'}


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('study')/'run'
    done = _cli('run', '--preset', 'tiny', '--out', out, *FLAGS, '--quiet', timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_report_and_summary(finished_run):
    from retina_nbdev.pipeline import STAGES, REPORT_SECTIONS
    summary = json.loads((finished_run/'summary.json').read_text())
    html = (finished_run/'report.html').read_text()
    assert set(STAGES) - {'report'} <= set(summary['stages']) and set(summary['timings']) >= set(STAGES) - {'report'}
    for name in REPORT_SECTIONS: assert f'Stage {name} has not run' not in html
    assert 'Model performance vs the noise ceiling' in html and 'Timings' in html and 'data:image/png;base64,' in html
    evaluation = summary['stages']['evaluate']
    assert -1 <= evaluation['cnn']['r'] <= evaluation['cnn']['ceiling'] + 0.2 and 0 < evaluation['cnn']['ceiling'] <= 1
    assert summary['stages']['attribute']['max_completeness_error'] < 0.05  # attributions add up to the responses
    assert set(summary['stages']['train']) == {'cnn', 'cnn_seed1', 'ln'} and evaluation['cnn_seeds']['models'] == 2
    assert 'Across 2 seeds of the BN-CNN' in html
    assert summary['stages']['prune']['jobs'] == len(summary['stages']['prune']['median_r']) - 1  # rewinding: one job, two compressions
    for name in ('Pruning: test correlation vs compression', 'Reduced circuits and their ground-truth score', 'The four phenomena: retina vs CNN'):
        assert name in html


def test_second_run_skips_every_stage(finished_run):
    before = {p: p.stat().st_mtime_ns for p in finished_run.glob('*/manifest.json')}
    again = _cli('run', '--preset', 'tiny', '--out', finished_run, *FLAGS, '--quiet', timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in finished_run.glob('*/manifest.json')} == before  # nothing re-ran


def _training_epochs(out):
    states = list((out/'.work').glob('train-*/runs/cnn-seed0/state.json'))
    try: return json.loads(states[0].read_text())['epoch'] if states else 0
    except json.JSONDecodeError: return 0


def _alive(pid):
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    return not Path(f'/proc/{pid}/status').exists() or 'State:\tZ' not in Path(f'/proc/{pid}/status').read_text()


def test_killed_during_training_resumes_to_the_same_summary(finished_run, tmp_path):
    out = tmp_path/'killed'
    process = subprocess.Popen([str(CLI), 'run', '--preset', 'tiny', '--out', str(out), *FLAGS, '--quiet'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while _training_epochs(out) < 1 and process.poll() is None and time.time() < deadline: time.sleep(0.05)
    assert process.poll() is None, f"the run ended before it could be killed: {process.communicate()[1][-2000:]}"
    workers = [json.loads(p.read_text())['pid'] for p in (out/'.work').glob('train-*/jobs/*.running')]
    process.send_signal(signal.SIGKILL); process.wait()
    assert workers and not (out/'train').exists()  # no partial stage folder under the real name
    deadline = time.time() + 60  # the driver's worker processes exit with it: no orphan trains into the run folder
    while any(_alive(pid) for pid in workers) and time.time() < deadline: time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), workers
    resumed = _cli('run', '--preset', 'tiny', '--out', out, *FLAGS, '--quiet', timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not list(out.glob('.*.tmp')) and not list((out/'.work').glob('*'))  # temporaries and checkpoints cleaned up
    expected = _without_timings(json.loads((finished_run/'summary.json').read_text()))
    assert _without_timings(json.loads((out/'summary.json').read_text())) == expected


@pytest.mark.parametrize('args, message', [
    (['run', '--preset', 'huge'], "invalid choice: 'huge'"),
    (['run', '--seed', '-3'], '--seed must be non-negative'),
    (['train', '--epochs', '0'], '--epochs must be at least 1'),
    (['dance'], "invalid choice: 'dance'"),
])
def test_bad_flags_exit_2(tmp_path, args, message):
    done = _cli(*args, '--out', tmp_path/'out', timeout=120) if args[0] != 'dance' else _cli(*args, timeout=120)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path/'out').exists()


def test_broken_data_folder_exits_2(tmp_path):
    from retina_nbdev.data import toy_recording
    path = toy_recording(tmp_path/'data'/'exp1'/'naturalscene.h5', train_frames=400, test_frames=100)
    with h5py.File(path, 'a') as f: del f['train/response/firing_rate_10ms']
    done = _cli('run', '--preset', 'tiny', '--data', tmp_path/'data', '--out', tmp_path/'out', timeout=120)
    assert done.returncode == 2 and 'firing_rate_10ms' in done.stderr and 'naturalscene.h5' in done.stderr, done.stderr
    assert not (tmp_path/'out').exists()
    empty = _cli('run', '--preset', 'tiny', '--data', tmp_path, '--out', tmp_path/'out', timeout=120)
    assert empty.returncode == 2 and 'no <experiment>/naturalscene.h5' in empty.stderr

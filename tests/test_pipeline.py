"""The main job end to end: `retina-nbdev run --preset tiny`, a second run, resumption after SIGKILL, and bad data.

The finished study is the session's `tiny_study` (tests/conftest.py), shared with tests/test_distributed.py. The CLI's
bad flags are checked in `10c_cli`, on `main` itself."""
import json, os, shutil, signal, subprocess, time
from pathlib import Path

import h5py
import pytest

from conftest import CLI, cli as _cli, copy_stages


@pytest.fixture
def finished_run(tiny_study):
    return tiny_study


def test_report_and_summary(finished_run):
    from retina_nbdev.pipeline import STAGES
    from retina_nbdev.report import REPORT_SECTIONS
    summary = json.loads((finished_run/'summary.json').read_text())
    html = (finished_run/'report.html').read_text()
    assert set(STAGES) - {'report'} <= set(summary['stages']) and set(summary['timings']) >= set(STAGES) - {'report'}
    for name in REPORT_SECTIONS: assert f'Stage {name} has not run' not in html
    assert 'Model performance vs the noise ceiling' in html and 'Timings' in html and 'data:image/png;base64,' in html
    evaluation = summary['stages']['evaluate']
    assert -1 <= evaluation['cnn']['r'] <= evaluation['cnn']['ceiling'] + 0.2 and 0 < evaluation['cnn']['ceiling'] <= 1
    assert summary['stages']['attribute']['max_completeness_error'] < 0.05  # attributions add up to the responses
    assert set(summary['stages']['train']) == {'cnn', 'ln'}  # several model seeds: the 10a_pipeline notebook's tiny run
    assert summary['stages']['prune']['jobs'] == len(summary['stages']['prune']['median_r']) - 1  # rewinding: one job, two compressions
    for name in ('Pruning: test correlation vs compression', 'Reduced circuits and their ground-truth score', 'The four phenomena: retina vs CNN'):
        assert name in html


def test_second_run_skips_every_stage(finished_run, study_flags, tmp_path):
    from retina_nbdev.pipeline import STAGES
    run = shutil.copytree(finished_run, tmp_path/'run')  # a copy: the shared study stays as it is
    before = {p: p.stat().st_mtime_ns for p in run.glob('*/manifest.json')}
    again = _cli('run', '--out', run, *study_flags, '--quiet', timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p.parent.name for p in before} == set(STAGES)  # every stage has run
    assert {p: p.stat().st_mtime_ns for p in run.glob('*/manifest.json')} == before  # nothing re-ran


def _training_epochs(out):
    states = list((out/'.work').glob('train-*/runs/cnn-seed0/state.json'))
    try: return json.loads(states[0].read_text())['epoch'] if states else 0
    except json.JSONDecodeError: return 0


def _alive(pid):
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    return not Path(f'/proc/{pid}/status').exists() or 'State:\tZ' not in Path(f'/proc/{pid}/status').read_text()


def _stage_summaries(run, stages):
    return {stage: json.loads((run/stage/'manifest.json').read_text())['summary'] for stage in stages}


def test_killed_during_training_resumes_to_the_same_results(finished_run, study_flags, tmp_path):
    "`retina-nbdev evaluate` (simulate, train, evaluate) killed mid-training, then run again: the study's numbers."
    out = tmp_path/'killed'
    process = subprocess.Popen([str(CLI), 'evaluate', '--out', str(out), *study_flags, '--quiet'],
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
    resumed = _cli('evaluate', '--out', out, *study_flags, timeout=900)  # with progress: each job's epochs, as they finish
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'cnn-seed0: epoch 1/' in resumed.stdout and 'ln-seed0: epoch 1/' in resumed.stdout and 'val_r' in resumed.stdout, resumed.stdout[-2000:]
    assert not list(out.glob('.*.tmp')) and not list((out/'.work').glob('*'))  # temporaries and checkpoints cleaned up
    stages = ('simulate', 'train', 'evaluate')  # the models trained through the kill, and what they predict
    assert _stage_summaries(out, stages) == _stage_summaries(finished_run, stages)
    for name in ('cnn_history.json', 'ln_history.json'):
        history = lambda run: [{k: v for k, v in row.items() if k != 'seconds'} for row in json.loads((run/'train'/name).read_text())]
        assert history(out) == history(finished_run), name


def test_broken_data_folder_exits_2(tmp_path):
    from retina_nbdev.data import toy_recording
    path = toy_recording(tmp_path/'data'/'exp1'/'naturalscene.h5', train_frames=400, test_frames=100)
    with h5py.File(path, 'a') as f: del f['train/response/firing_rate_10ms']
    done = _cli('run', '--preset', 'tiny', '--data', tmp_path/'data', '--out', tmp_path/'out', timeout=120)
    assert done.returncode == 2 and 'firing_rate_10ms' in done.stderr and 'naturalscene.h5' in done.stderr, done.stderr
    assert not (tmp_path/'out').exists()
    empty = _cli('run', '--preset', 'tiny', '--data', tmp_path, '--out', tmp_path/'out', timeout=120)
    assert empty.returncode == 2 and 'no <experiment>/naturalscene.h5' in empty.stderr


def test_editing_a_module_reruns_the_stages_that_run_it(finished_run, study_flags, tmp_path):
    "With `phenomena.py` edited (in a copy of the package), a second run re-runs phenomena and what follows from it only."
    import retina_nbdev
    from retina_nbdev.pipeline import STAGES
    library = tmp_path/'library'
    package = shutil.copytree(Path(retina_nbdev.__file__).parent, library/'retina_nbdev', ignore=shutil.ignore_patterns('__pycache__'))
    (package/'phenomena.py').write_text((package/'phenomena.py').read_text() + '\n# edited: the same code, another source\n')
    run = shutil.copytree(finished_run, tmp_path/'run')
    before = {stage: (run/stage/'manifest.json').stat().st_mtime_ns for stage in STAGES}
    script = 'import sys, retina_nbdev; from retina_nbdev.cli import main; print(retina_nbdev.__file__); sys.exit(main(sys.argv[1:]))'
    done = subprocess.run([os.sys.executable, '-c', script, 'run', '--out', str(run), *study_flags, '--quiet'], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PYTHONPATH=str(library)), cwd=tmp_path)  # not from ./retina_nbdev
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(str(package)), done.stdout  # the edited copy ran, not the installed package
    rerun = {stage for stage in STAGES if (run/stage/'manifest.json').stat().st_mtime_ns != before[stage]}
    assert rerun == {'phenomena', 'attribute', 'reduce', 'report'}, rerun


def test_a_new_pruning_grid_reruns_prune_and_report_only(finished_run, tmp_path):
    "A finished run given another pruning grid: every other stage's key is unchanged, so only prune and the report run."
    from retina_nbdev.pipeline import STAGES, RunConfig, run_stage
    run = shutil.copytree(finished_run, tmp_path/'run')
    config = RunConfig(run, 'tiny', seed=0, progress=False, options=dict(pruning=dict(methods=('random',), compressions=(1.0, 10.0))))
    fresh = [name for name in STAGES if not run_stage(name, config)['skipped']]
    assert fresh == ['prune', 'report'], fresh
    assert json.loads((run/'prune'/'manifest.json').read_text())['summary']['jobs'] == 2  # dense, and random at 10x


def test_several_model_seeds(finished_run, tmp_path):
    "`--model-seeds 2`: the CNN from the run's seed and the next, both scored, their spread in the summary and the report."
    from retina_nbdev.stages import RunConfig
    from retina_nbdev.report import write_report
    run = copy_stages(finished_run, tmp_path/'run', ['simulate'])  # the same recording: simulate is skipped
    done = _cli('evaluate', '--out', run, '--preset', 'tiny', '--model-seeds', '2', '--quiet', timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (run/'train').glob('*.keras')) == ['cnn.keras', 'cnn_seed1.keras', 'ln.keras']
    assert [j['key'] for j in json.loads((run/'train'/'jobs.json').read_text())] == ['cnn-seed0', 'cnn-seed1', 'ln-seed0']
    seeds = json.loads((run/'evaluate'/'manifest.json').read_text())['summary']['cnn_seeds']
    assert seeds['models'] == 2 and seeds['r_sd'] >= 0 and (run/'evaluate'/'seeds.csv').exists()
    write_report(RunConfig(run, 'tiny', options=dict(model_seeds=2), progress=False))
    assert 'Across 2 seeds of the BN-CNN' in (run/'report.html').read_text()


def test_a_run_that_reduces_nothing_still_reports(finished_run, tmp_path):
    "With no cell to reduce, the reduce stage writes a reductions.csv with its columns and no row, and the report reads it."
    import pandas as pd
    from retina_nbdev.phenomenon_reduction import REDUCTION_COLUMNS
    from retina_nbdev.report import REPORT_SECTIONS
    from retina_nbdev.stages import STAGES, RunConfig
    assert tuple(pd.read_csv(finished_run/'reduce'/'reductions.csv').columns) == REDUCTION_COLUMNS  # no column dropped
    inputs = {name: finished_run/name for name in ('simulate', 'train', 'phenomena')} | {'attribute': tmp_path/'no_attributions'}
    inputs['attribute'].mkdir()
    (tmp_path/'reduce').mkdir(); (tmp_path/'work').mkdir()
    summary = STAGES['reduce'].run(RunConfig(out=tmp_path, preset='tiny'), tmp_path/'reduce', inputs, tmp_path/'work')
    table = pd.read_csv(tmp_path/'reduce'/'reductions.csv')
    assert table.empty and tuple(table.columns) == REDUCTION_COLUMNS
    assert (summary['per_phenomenon'], summary['channels_kept'], summary['extra_types_needed']) == ({}, 0.0, None)
    section = REPORT_SECTIONS['reduce'](tmp_path/'reduce', dict(summary=summary))
    assert section.paragraphs == ['No cell showed a phenomenon to reduce.']

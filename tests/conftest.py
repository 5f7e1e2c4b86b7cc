"""What the test files share: one tiny study, for every test that is not about training itself (the report, a second
run, the Ray executor's results against the local executor's). It is the study the paper notebooks draw from
(`retina_nbdev.pipeline.study_run`): run once per version of the library into a cache folder, so under `make test`
pytest finds the one nbdev-test made."""
import shutil, subprocess, sys
from pathlib import Path

import pytest

CLI = Path(sys.executable).parent/'retina-nbdev'
STUDY_FLAGS = ['--preset', 'tiny']  # `study_run`'s run: seed 0, the preset's epochs, one model seed, the default grid


def cli(*args, timeout=900, env=None):
    "Run `retina-nbdev` with `args`; the completed process, output captured as text."
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def copy_stages(run, out, stages):
    "Copy the stage folders `stages` of the finished `run` into a new run folder `out`: a later run there skips them."
    for stage in stages: shutil.copytree(run/stage, out/stage)
    return out


@pytest.fixture(scope='session')
def study_flags():
    "The CLI flags of the shared study: a run with the same ones finds its stages complete (same keys)."
    return list(STUDY_FLAGS)


@pytest.fixture(scope='session')
def tiny_study(tmp_path_factory):
    "The run folder of the finished tiny study (local executor). Read it or copy from it; never write into it."
    from retina_nbdev.pipeline import RunOptions, study_run
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('RETINA_HOME', str(tmp_path_factory.mktemp('no_results')))  # not a run found in ./results: the cache
        run = study_run('tiny')
    assert run.options == RunOptions() and run.seed == 0 and run.data is None  # what STUDY_FLAGS ask of the CLI
    return run.out

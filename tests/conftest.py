"""What the test files share: one tiny study, run once per session through the CLI, for every test that is not about
training itself (the report, a second run, the Ray executor's results against the local executor's)."""
import shutil, subprocess, sys
from pathlib import Path

import pytest

CLI = Path(sys.executable).parent/'retina-nbdev'
STUDY_FLAGS = ['--preset', 'tiny', '--epochs', '2', '--model-seeds', '2']  # the CNN from two seeds: train fans out three jobs


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
    "The run folder of a finished tiny study (`retina-nbdev run`, local executor). Read it or copy from it; never write into it."
    out = tmp_path_factory.mktemp('tiny_study')/'run'
    done = cli('run', '--out', out, *STUDY_FLAGS, '--quiet')
    assert done.returncode == 0, done.stderr[-3000:]
    return out

"""The pruning study, beyond the notebook `08a_pruning_study` (which checks the grids, the runs of a grid, a dense, a
SynFlow and a rewinding run, and a study resumed): the order of the runs of a grid with several seeds, and every
method of the grid through `pruning_run` (SNIP and GraSP score training batches), each keeping the count asked for."""
import math

import pandas as pd

from retina_nbdev.data import load_recording, toy_recording
from retina_nbdev.models import bn_cnn
from retina_nbdev.pruning import prunable_weights
from retina_nbdev.pruning_study import STUDY_METHODS, pruning_grid, pruning_runs, pruning_study, run_folder


def test_runs_follow_seeds_and_methods_with_compressions_sorted_once():
    grid = dict(seeds=(1, 0), methods=('synflow', 'rewinding', 'random'), compressions=(100, 10, 10.0, 1))
    per_seed = lambda seed: [(seed, 'dense', 1.0), (seed, 'synflow', 10.0), (seed, 'synflow', 100.0),
                             (seed, 'random', 10.0), (seed, 'random', 100.0), (seed, 'rewinding', None)]
    assert pruning_runs(grid) == per_seed(1) + per_seed(0)
    assert pruning_runs(dict(grid, methods=())) == [(1, 'dense', 1.0), (0, 'dense', 1.0)]  # the dense model always


def test_every_method_of_the_grid_keeps_the_count_asked_for(tmp_path):
    recording = load_recording(toy_recording(tmp_path/'toy.h5', pixels=16, train_frames=1200, test_frames=200, num_cells=4),
                               history=20)
    total = sum(math.prod(getattr(*where).shape) for where in prunable_weights(bn_cnn('tiny')).values())
    study = pruning_study(recording, tmp_path/'study', 'tiny', grid=dict(compressions=(1, 10)))
    assert list(study.method) == ['dense', *STUDY_METHODS]
    assert study.kept.tolist() == [total] + [round(total / 10)] * len(STUDY_METHODS)
    assert study.compression.tolist() == [1.0] + [10.0] * len(STUDY_METHODS)
    assert all(len(survival) == 4 for survival in study.survival)  # the tiny conv1's channels
    assert set(study.columns) == {'seed', 'method', 'compression', 'achieved', 'kept', 'collapsed', 'connected', 'r', 'r_true', 'survival', 'seconds'}
    assert pd.read_csv(tmp_path/'study'/'pruning.csv').method.tolist() == list(study.method)
    for row in study.itertuples():  # a run whose pruning emptied a layer is not trained (r = 0); every other one is
        trained = (run_folder(tmp_path/'study', 0, row.method, row.compression)/'best.weights.h5').exists()
        assert trained == (row.collapsed == 0) and (trained or row.r == 0), row
    assert pruning_grid('tiny')['compressions'] != (1, 10)  # the override did not change the preset's grid

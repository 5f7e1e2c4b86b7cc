"""Pruning, beyond the notebooks `08_pruning` (which checks masks through training and saving, exact counts, SynFlow's
conservation on a deep net, rewinding and bad input) and `08b_collapse` (layer collapse): conservation with pooling, no revival across
rounds, the exactness of the one-shot critical compression, and a model left as it was. The study's grid and runs
are in `test_pruning_study.py`."""
import math

import numpy as np

from retina_nbdev.collapse import collapsed, critical_compression
from retina_nbdev.pruning import (get_masks, plain_cnn, prunable_weights, prune,
                                  remove_masks, SynFlow)


def _total(model):
    return sum(math.prod(getattr(*w).shape) for w in prunable_weights(model).values())


def test_synflow_conservation_vgg_like_with_pooling():
    model = plain_cnn(seed=1)
    total, scores = SynFlow(model).flow(list(prunable_weights(model)))
    np.testing.assert_allclose([s.sum() for s in scores.values()], total, rtol=1e-9)


def test_synflow_does_not_revive_and_schedule_is_nested():
    model = plain_cnn(widths=(8, 'M', 16, 16), input_shape=(8, 8, 2))
    first = prune(model, 'synflow', 4, rounds=3)
    second = prune(model, 'synflow', 40, rounds=3)
    for name in first: assert (second[name] <= first[name]).all()
    assert sum(int(m.sum()) for m in second.values()) == round(_total(model) / 40)


def test_critical_compression_single_shot_is_exact():
    model = plain_cnn(widths=(4, 8), input_shape=(4, 4, 1))
    critical = critical_compression(model, 'magnitude')
    keep = round(_total(model) / critical)
    assert collapsed(prune(plain_cnn(widths=(4, 8), input_shape=(4, 4, 1)), 'magnitude', _total(model) / keep))
    assert not collapsed(prune(plain_cnn(widths=(4, 8), input_shape=(4, 4, 1)), 'magnitude', _total(model) / (keep + 1)))


def test_critical_compression_leaves_model_unchanged():
    model = plain_cnn(widths=(4, 8), input_shape=(4, 4, 1))
    before = [w.copy() for w in model.get_weights()]
    critical_compression(model, 'synflow', rounds=5, steps=2)
    assert not get_masks(model)
    for a, b in zip(before, model.get_weights()): np.testing.assert_array_equal(a, b)


def test_remove_masks():
    model = plain_cnn(widths=(4,), input_shape=(4, 4, 1))
    prune(model, 'random', 2)
    assert get_masks(model)
    remove_masks(model)
    assert not get_masks(model)

"""Pruning: masks stay exact through training and saving, exact counts, SynFlow's conservation, layer collapse, bad input."""
import math

import numpy as np
import pytest

from retina_nbdev.pruning import (WeightMask, apply_masks, check_compression, collapsed, compare_channels,
                                  critical_compression, get_masks, magnitude_rewinding, maximal_compression,
                                  plain_cnn, prunable_weights, prune, pruning_grid, pruning_study, remove_masks,
                                  SynFlow, top_k_masks)


def _values(model, name):
    layer, attr = prunable_weights(model, True, True)[name]
    return np.asarray(getattr(layer, attr).numpy())


def _total(model):
    return sum(math.prod(getattr(*w).shape) for w in prunable_weights(model).values())


@pytest.fixture(scope='module')
def recording(tmp_path_factory):
    from retina_nbdev.data import toy_recording, load_recording
    path = toy_recording(tmp_path_factory.mktemp('data')/'toy.h5', pixels=16, train_frames=1200, test_frames=200, num_cells=4)
    return load_recording(path, history=20)


@pytest.mark.parametrize('chunked', [True, False])
def test_masks_exact_through_training_and_reload(recording, tmp_path, chunked):
    from retina_nbdev.models import bn_cnn, save_model, load_model
    from retina_nbdev.train import fit
    model = bn_cnn('tiny', num_cells=4)
    masks = prune(model, 'random', 8, seed=3)
    before = {n: _values(model, n) for n in masks}
    fit(model, recording, tmp_path/'run', epochs=2, batch_size=64, max_batches=5, progress=False, chunked=chunked)
    for name, mask in masks.items():
        after = _values(model, name)
        assert np.count_nonzero(after[mask == 0]) == 0, name
        assert np.abs(after - before[name])[mask == 1].max() > 1e-4, f'{name} did not train'
    loaded = load_model(save_model(model, tmp_path/'pruned.keras'))
    for name, mask in masks.items():
        np.testing.assert_array_equal(get_masks(loaded)[name], mask)
        np.testing.assert_array_equal(_values(loaded, name), _values(model, name))
    fit(loaded, recording, tmp_path/'again', epochs=1, batch_size=64, max_batches=3, progress=False, chunked=chunked)
    for name, mask in masks.items(): assert np.count_nonzero(_values(loaded, name)[mask == 0]) == 0


def test_mask_config_round_trip():
    mask = (np.random.default_rng(0).random((3, 5, 7)) < 0.5).astype('float32')
    restored = WeightMask(**WeightMask(mask).get_config())
    np.testing.assert_array_equal(restored.mask.numpy(), mask)
    with pytest.raises(ValueError, match='only 0 and 1'): WeightMask(np.full(4, 2.0))


@pytest.mark.parametrize('method', ['random', 'magnitude', 'synflow', 'snip', 'grasp'])
@pytest.mark.parametrize('compression', [1.0, 3.3, 250.0])
def test_kept_count_exact(recording, method, compression):
    from retina_nbdev.models import bn_cnn
    model = bn_cnn('tiny', num_cells=4)
    data = list(recording.dataset('train', batch_size=64, seed=0).take(1))
    masks = prune(model, method, compression, rounds=5 if method == 'synflow' else None, data=data)
    assert sum(int(m.sum()) for m in masks.values()) == round(_total(model) / compression)
    for name, mask in masks.items(): assert np.count_nonzero(_values(model, name)[mask == 0]) == 0


def test_magnitude_keeps_exactly_the_largest():
    model = plain_cnn(widths=(8, 'M', 16), input_shape=(8, 8, 2))
    weights = np.concatenate([np.abs(_values(model, n)).ravel() for n in prunable_weights(model)])
    kept = np.concatenate([m.ravel() for m in prune(model, 'magnitude', 10).values()]).astype(bool)
    assert kept.sum() == round(weights.size / 10)
    assert weights[kept].min() >= weights[~kept].max()
    np.testing.assert_array_equal(np.sort(weights[kept]), np.sort(weights)[-kept.sum():])


@pytest.mark.parametrize('scale', [10.0, 0.01])
def test_synflow_conservation_deep_net_float64(scale):
    base = plain_cnn(widths=(8,) * 40, input_shape=(6, 6, 1))
    base.set_weights([w * scale for w in base.get_weights()])
    names = list(prunable_weights(base))
    assert len(names) == 41
    float32 = SynFlow(base, 'float32').flow(names)[0]
    assert float32 == (np.inf if scale > 1 else 0.0)  # what float32 gets: overflow / underflow
    total, scores = SynFlow(base).flow(names)
    assert np.isfinite(total) and total > 0
    np.testing.assert_allclose([s.sum() for s in scores.values()], total, rtol=1e-9)


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


def test_top_k_ties_exact():
    masks = top_k_masks({'a': np.ones((4, 4)), 'b': np.ones(8)}, 5)
    assert sum(m.sum() for m in masks.values()) == 5


@pytest.mark.parametrize('bad, message', [(float('nan'), 'finite'), (0.5, '>= 1'), (-3, '>= 1'), (math.inf, 'finite'),
                                          (None, 'a number'), ('x', 'a number')])
def test_bad_compression(bad, message):
    model = plain_cnn(widths=(4,), input_shape=(4, 4, 1))
    with pytest.raises(ValueError, match=message): prune(model, 'magnitude', bad)


def test_bad_arguments():
    model = plain_cnn(widths=(4,), input_shape=(4, 4, 1))
    with pytest.raises(ValueError, match='> 1'): check_compression(1, strict=True)
    with pytest.raises(ValueError, match='keeps no weight'): prune(model, 'random', 1e6)
    with pytest.raises(ValueError, match='unknown pruning method'): prune(model, 'lottery', 2)
    with pytest.raises(ValueError, match='need data'): prune(model, 'grasp', 2)
    with pytest.raises(ValueError, match='rounds'): prune(model, 'synflow', 2, rounds=0)
    with pytest.raises(ValueError, match='no prunable weight'): apply_masks(model, {'conv7.kernel': np.ones(1)})
    with pytest.raises(ValueError, match='one length'): compare_channels([1, 2], [1])


def test_layer_collapse_vgg_like():
    model = plain_cnn()
    highest = maximal_compression(model)
    assert len(prunable_weights(model)) == 9 and highest == pytest.approx(_total(model) / 9)
    assert critical_compression(model, 'random') < highest / 10
    assert critical_compression(model, 'magnitude') < highest / 10
    assert critical_compression(model, 'synflow', rounds=100, steps=0) == math.inf
    masks = prune(plain_cnn(), 'synflow', highest, rounds=100)
    assert not collapsed(masks) and sum(int(m.sum()) for m in masks.values()) == len(masks)  # one weight per layer


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


def test_magnitude_rewinding_rewinds_and_nests():
    model = plain_cnn(widths=(4, 8), input_shape=(4, 4, 1))
    initial, seen = model.get_weights(), {}
    def train(model, compression):
        seen[compression] = ({n: _values(model, n).copy() for n in prunable_weights(model)}, get_masks(model))
        model.set_weights([w * 1.5 + 0.01 for w in model.get_weights()])
        return compression
    assert magnitude_rewinding(model, train, [4, 2]) == {1.0: 1.0, 2.0: 2.0, 4.0: 4.0}
    for name, mask in seen[4.0][1].items():
        assert (mask <= seen[2.0][1][name]).all()
        index = list(prunable_weights(model)).index(name)
        np.testing.assert_array_equal(seen[4.0][0][name], initial[index] * mask)  # rewound to the initial weights


def test_remove_masks():
    model = plain_cnn(widths=(4,), input_shape=(4, 4, 1))
    prune(model, 'random', 2)
    assert get_masks(model)
    remove_masks(model)
    assert not get_masks(model)


def test_pruning_grid():
    assert pruning_grid('small')['compressions'] == (1.0, 10.0, 100.0, 1000.0)
    full = pruning_grid('small', full=True)
    assert len(full['compressions']) >= 7 and full['compressions'][0] == 1 and full['compressions'][-1] == 1000
    assert set(pruning_grid('paper')['methods']) >= {'random', 'magnitude', 'snip', 'grasp', 'synflow'}


def test_pruning_study_resumes(recording, tmp_path):
    grid = dict(methods=('magnitude', 'rewinding'), compressions=(1, 5), epochs=1, max_batches=2)
    first = pruning_study(recording, tmp_path, 'tiny', grid)
    assert list(first.method) == ['dense', 'magnitude', 'rewinding']
    assert (tmp_path/'pruning.csv').exists()
    again = pruning_study(recording, tmp_path, 'tiny', grid)  # every run resumes from its checkpoint: same models
    np.testing.assert_allclose(again.r, first.r)
    with pytest.raises(ValueError, match='unknown pruning methods'):
        pruning_study(recording, tmp_path, 'tiny', dict(methods=('oracle',)))

"""The training experiments' variants (tools/training_experiments.py): the movies they train on and the loss they add."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from retina_nbdev import retina
from retina_nbdev.core import seed_everything

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location('training_experiments', ROOT/'tools'/'training_experiments.py')
experiments = importlib.util.module_from_spec(spec); spec.loader.exec_module(experiments)


def test_moving_bars_hold_one_bar_that_reverses():
    movie = experiments.moving_bars(1000, 12, seed=3)
    assert movie.shape == (1000, 12, 12)
    for block in (movie[:500], movie[500:]):
        columns = np.ptp(block, axis=1).max() == 0  # a bar across the whole height (or, turned, the whole width)
        assert columns or np.ptp(block, axis=2).max() == 0
        profile = block[:, 0, :] if columns else block[:, :, 0]
        contrast = profile.sum(1)
        assert len(set(np.sign(contrast[contrast != 0]))) == 1  # one bar, one polarity
        centre = (profile * np.arange(12)).sum(1)[contrast != 0] / contrast[contrast != 0]
        moves = np.diff(centre)
        assert (np.diff(np.sign(moves[np.abs(moves) > 1e-6])) != 0).sum() >= 2  # it turns back, more than once


def test_graded_full_field_blocks_replace_only_the_flicker():
    binary = retina.stimulus_ensemble(6000, 8, seed=0)
    for kind in ('gaussian', 'flashes'):
        graded = experiments.ensemble_variant(flicker=kind)(6000, 8, seed=0)
        for start in range(0, 6000, 500):
            before, after = binary[start:start + 500], graded[start:start + 500]
            if np.ptp(before, axis=(1, 2)).max() == 0:  # a full-field block: still full-field, no longer binary
                assert np.ptp(after, axis=(1, 2)).max() == 0 and len(np.unique(after)) > 3
            else: np.testing.assert_array_equal(after, before)
    flashes = experiments.graded_full_field(3000, 'flashes', seed=1)
    assert 0.05 < (flashes != 0).mean() < 0.3  # brief flashes on grey
    with pytest.raises(ValueError, match='moving-bar'): experiments.ensemble_variant(moving_bars_share=1.5)


def test_moving_bar_share():
    movie = experiments.ensemble_variant(moving_bars_share=1.0)(2000, 8, seed=0)
    np.testing.assert_array_equal(movie, experiments.moving_bars(2000, 8, seed=13))
    np.testing.assert_array_equal(experiments.ensemble_variant()(2000, 8, seed=0), retina.stimulus_ensemble(2000, 8, seed=0))


def test_activity_l1_adds_the_hidden_activity():
    import keras, tensorflow as tf
    from retina_nbdev.chunked import make_train_step
    from retina_nbdev.models import bn_cnn

    def first_loss(make_step):
        seed_everything(0)
        model = bn_cnn('tiny', num_cells=3, noise_std=0.0)
        model.compile(optimizer=keras.optimizers.SGD(0.0))  # no update: both steps see the same weights
        chunks = tf.random.stateless_normal((2, 32 + model.input_shape[-1] - 1, *model.input_shape[1:3]), seed=(1, 2))
        return model, chunks, float(make_step(model)(chunks, tf.fill((64, 3), 2.0)))

    model, chunks, plain = first_loss(make_train_step)
    _, _, same = first_loss(experiments.activity_l1_step(0.0))
    _, _, penalised = first_loss(experiments.activity_l1_step(1e-3))
    np.testing.assert_allclose(same, plain, rtol=1e-5)
    from retina_nbdev.chunked import fft_conv1
    conv1 = model.get_layer('conv1')
    x, activity = fft_conv1(chunks, conv1.kernel, conv1.bias), 0.0
    for layer in model.layers[2:]:
        x = layer(x, training=True)
        if layer.name.endswith('_relu'): activity += float(tf.reduce_mean(tf.reduce_sum(tf.abs(x), axis=[1, 2, 3])))
    assert activity > 0
    np.testing.assert_allclose(penalised - plain, 1e-3 * activity, rtol=1e-3)


def test_noiseless_copy_trains_on_the_true_rate(tmp_path):
    import h5py
    recorded = retina.simulate_experiment('tiny', 'naturalscene', seed=0, out=tmp_path)
    noiseless = experiments.noiseless_copy(recorded, tmp_path/'noiseless.h5')
    assert not list(tmp_path.glob('*.partial.h5'))  # written under a temporary name, then renamed
    with h5py.File(noiseless) as f, h5py.File(recorded) as g:
        true_rate = g['ground_truth/true_rate_train'][...]
        np.testing.assert_array_equal(f['train/response/firing_rate_10ms'][...], true_rate)  # the training targets: the true rate
        assert not np.array_equal(g['train/response/firing_rate_10ms'][...], true_rate)  # the recording's: noisy spikes
        for key in ('train/stimulus', 'test/stimulus', 'test/response/firing_rate_10ms', 'test/response/binned'):
            np.testing.assert_array_equal(f[key][...], g[key][...])  # the movies and the test responses stay as recorded
    from retina_nbdev.data import load_recording
    loaded = load_recording(noiseless, history=5)
    np.testing.assert_array_equal(loaded.train_rates, true_rate.T[-len(loaded.train_rates):])  # what `fit` trains on
    assert experiments.noiseless_copy(recorded, tmp_path/'noiseless.h5') == noiseless  # made once
    with h5py.File(noiseless, 'r+') as f: del f['ground_truth/true_rate_train']  # as a real recording: no true rate
    with pytest.raises(ValueError, match='true_rate_train'): experiments.noiseless_copy(noiseless, tmp_path/'again.h5')
    assert not list(tmp_path.glob('again*'))  # nothing half-written


def test_reductions_are_scored_as_the_study_scores_them(tiny_study, tmp_path):
    "`--reductions`: the tool's precision and recall of the tiny study's CNN are the reduce stage's, cell for cell."
    import json
    import pandas as pd
    from retina_nbdev.core import get_preset
    from retina_nbdev.data import load_recording
    from retina_nbdev.models import load_model
    preset = get_preset('tiny')
    recording = load_recording(tiny_study/'simulate'/'insilico'/'ensemble.h5', history=preset.history, nskip=preset.nskip)
    row = dict(name='tiny')
    cells = experiments.reduction_scores(load_model(tiny_study/'train'/'cnn.keras'), recording, preset, tmp_path, row)
    study = pd.read_csv(tiny_study/'reduce'/'reductions.csv')
    assert len(study), 'the tiny study reduced no cell: nothing to compare'
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path/'reductions.csv'), cells.reset_index(drop=True), check_dtype=False)  # what it wrote
    compared = ['phenomenon', 'cell', 'keep', 'types', 'truth', 'precision', 'recall'] + (['needed'] if 'needed' in study else [])
    pd.testing.assert_frame_equal(cells[compared].fillna('').astype(str), study[compared].fillna('').astype(str))
    stages = json.loads((tiny_study/'summary.json').read_text())['stages']
    assert row['r_over_ceiling'] == pytest.approx(stages['evaluate']['cnn']['fraction'], abs=1e-3)  # the evaluate stage's median r / ceiling
    scores = stages['reduce']['per_phenomenon']
    for name in experiments.PHENOMENA:
        assert row[f'{name}_cells'] == int(scores.get(name, {}).get('reduced', 0))
        assert row[f'{name}_retina_cells'] == stages['phenomena']['reproduction'][name]['retina_cells']
        for measure in ('precision', 'recall'):
            expected = scores.get(name, {}).get(measure)
            assert (row[f'{name}_{measure}'] is None) if expected is None else row[f'{name}_{measure}'] == pytest.approx(expected, abs=1e-3)
    assert set(row) == set(experiments.MODEL_REDUCTION_COLUMNS) - {'minutes'}


def test_the_truth_of_an_ablated_retina():
    "`--retina-ablate`: on a retina with its gain control silenced, silencing it again changes nothing; on the intact one it does."
    import pandas as pd
    from retina_nbdev.retina import Retina
    retina = Retina(preset='tiny')
    values = lambda table, ablation: table[table.ablation == ablation].filter(like='value_').reset_index(drop=True)
    _, intact = experiments.retina_ablations(retina)
    _, ablated = experiments.retina_ablations(retina, ('gain_control',))
    pd.testing.assert_frame_equal(values(ablated, 'gain_control'), values(ablated, 'none'))
    assert not values(intact, 'gain_control').equals(values(intact, 'none'))
    assert not values(ablated, 'none').equals(values(intact, 'none'))  # the base retina is the ablated one
    assert set(ablated.ablation) == {'none', 'on_fast', 'off_fast', 'on_slow', 'off_slow', 'amacrine', 'gain_control'}


def test_a_retina_with_changed_parameters():
    "`--retina-param`: NAME=VALUE pairs become the retina's parameters; without depression, release scales with the drive."
    from retina_nbdev.retina import Retina, RetinaParams, _bipolar_release, _initial_state
    assert experiments.retina_params([]) is None
    params = experiments.retina_params(['depression_use=0', 'recovery_tau=0.2'])
    assert params == RetinaParams(depression_use=0.0, recovery_tau=0.2)
    for bad in ('depression=0', 'gc_types=on_off', 'depression_use', 'depression_use=fast'):
        with pytest.raises(ValueError, match='NAME=VALUE'): experiments.retina_params([bad])
    assert experiments.retina_params(['filter_order=4']).filter_order == 4
    with pytest.raises(ValueError, match='filter_order is a whole number'): experiments.retina_params(['filter_order=2.5'])  # not truncated to 2
    step = np.zeros((60, 16, 16), np.float32); step[10:40] = -1.0  # a dark step: OFF bipolars driven
    def off_fast(changed, contrast):
        cell = Retina(changed, 'tiny')
        return _bipolar_release(cell, contrast * step, _initial_state(cell), np.ones(4, np.float32))[:, 1].mean(1)
    np.testing.assert_allclose(off_fast(params, 2.0), 2 * off_fast(params, 1.0), rtol=1e-4, atol=1e-6)  # no depression: linear in the drive
    depressed = off_fast(None, 2.0)[20:40] / off_fast(None, 1.0)[20:40]
    assert depressed.max() < 1.9  # a depressing synapse gives less than twice for twice the drive


def test_channel_filters_and_the_retinas_adapted_templates(tiny_study):
    "`--reductions filters`: each conv1 channel's filter as `channel_types` reads it, then the retina's adapted release filters, each typed as its bipolar type."
    from retina_nbdev.core import get_preset
    from retina_nbdev.data import load_recording
    from retina_nbdev.models import load_model
    from retina_nbdev.reduction import classify_filter, effective_filters
    from retina_nbdev.retina import BIPOLAR_TYPES
    preset = get_preset('tiny')
    recording = load_recording(tiny_study/'simulate'/'insilico'/'ensemble.h5', history=preset.history, nskip=preset.nskip)
    model = load_model(tiny_study/'train'/'cnn.keras')
    rows = experiments.channel_filters(model, recording, preset, frames=6000)
    channels = effective_filters(model, batchnorm=False)
    assert [row['source'] for row in rows] == [f'channel {c}' for c in range(len(channels))] + [f'adapted {t}' for t in BIPOLAR_TYPES]
    filters = np.array([[float(v) for v in row['filter'].split()] for row in rows])
    assert filters.shape == (len(channels) + 4, preset.history)  # lags 1..history
    np.testing.assert_allclose(filters[:len(channels)], channels[:, 1:], rtol=1e-3, atol=1e-6)  # written to 4 significant digits
    assert [classify_filter(np.r_[0, f]) for f in filters[len(channels):]] == list(BIPOLAR_TYPES)  # known answer: each template its own type
    def fast_undershoot(settings):  # the adapted OFF-fast filter's negative lobe, as a share of its peak
        off_fast = -np.array([float(v) for v in experiments.channel_filters(model, recording, preset, experiments.retina_params(settings), frames=6000)[len(channels) + 1]['filter'].split()])
        return -off_fast.min() / off_fast.max()
    assert fast_undershoot([]) > 0.15 and fast_undershoot(['fast_undershoot=0']) > 0.15  # depression alone makes the release biphasic
    assert fast_undershoot(['fast_undershoot=0', 'depression_use=0']) < 0.1  # a monophasic filter and no depression: monophasic release

"""Known-answer tests of the in-silico retina (`retina_nbdev.retina`), beyond the notebook `02a_retina_checks` (which
checks the STA from spikes against the planted cells, ablations of whole pathways and the convergence of trial
averages): a second retina's STA, every cell silenced, causality and chunking, sources, files."""
import json

import h5py
import numpy as np
import pytest

from retina_nbdev.core import get_preset
from retina_nbdev.retina import (ABLATIONS, BIPOLAR_TYPES, Retina, RetinaParams, check_ablate, natural_images,
                                 natural_movie, simulate_experiment, white_noise)


@pytest.fixture(scope='module')
def retina():
    return Retina(preset='tiny', seed=0)


def spike_sta(movie, counts, lags=30):
    "Classic spike-triggered average (lags, H, W) from spike counts per bin."
    return np.stack([np.tensordot(counts[lag:], movie[:len(movie) - lag], 1) for lag in range(lags)]) / counts.sum()


def test_sta_moves_with_the_planted_centre():
    "A retina with other positions gives STAs at the other positions (the test is not passing by luck)."
    a, b = Retina(preset='tiny', seed=0), Retina(preset='tiny', seed=5)
    assert np.abs(a.centres - b.centres).max() > 1.5
    movie = white_noise(6000, 16, seed=2, frame_hold=3)
    for retina in (a, b):
        rate = retina.rates(movie)[:, 0]
        s = spike_sta(movie, rate)
        lag = np.abs(s).max((1, 2)).argmax()
        y, x = np.unravel_index(np.argmin(s[lag]), s[lag].shape)  # off_fast: darkest pixel
        assert np.hypot(y - retina.centres[0, 0], x - retina.centres[0, 1]) <= 1.5


@pytest.mark.parametrize('cell', range(4))
def test_silencing_all_inputs_of_a_cell_silences_it(retina, cell):
    movie = white_noise(1000, 16, seed=1)
    inputs = tuple(t for t, w in zip(BIPOLAR_TYPES, retina.wiring[cell]) if w > 0)
    assert retina.rates(movie)[:, cell].max() > 5
    assert retina.rates(movie, ablate=inputs)[:, cell].max() == 0
    others = tuple(t for t in BIPOLAR_TYPES if t not in inputs)
    assert retina.rates(movie, ablate=others)[:, cell].max() > 5  # the other types are not needed


def test_repeats_differ_only_by_spike_noise(retina):
    rate = retina.rates(natural_movie(500, 16, seed=4))
    trials = retina.spikes(rate, num_repeats=2, seed=0)
    assert (trials[0] != trials[1]).any()
    np.testing.assert_array_equal(retina.rates(natural_movie(500, 16, seed=4)), rate)  # the rate itself is noiseless


def test_errors(retina):
    with pytest.raises(ValueError, match='valid ones are on_fast, off_fast'): retina.rates(np.zeros((5, 16, 16)), ablate=('rods',))
    with pytest.raises(ValueError, match='valid ones are'): check_ablate('cones')
    with pytest.raises(ValueError, match=r'shape \(T, 16, 16\)'): retina.rates(np.zeros((5, 16)))
    bad = np.zeros((5, 16, 16)); bad[2, 3, 3] = np.nan
    with pytest.raises(ValueError, match='NaN'): retina.rates(bad)
    with pytest.raises(ValueError, match='non-negative'): retina.spikes(-np.ones((5, 4)))
    with pytest.raises(ValueError, match='valid ones are whitenoise'): simulate_experiment('tiny', 'gratings')
    with pytest.raises(ValueError, match='gc_wiring'): RetinaParams(gc_types=('a',))
    assert set(ABLATIONS) == set(BIPOLAR_TYPES) | {'amacrine', 'gain_control'}


def test_causal_and_chunk_invariant_at_the_small_size():
    retina = Retina(preset='small', seed=1)
    movie = natural_movie(3000, 24, seed=0)
    rate = retina.rates(movie)
    assert rate.shape == (3000, 16)
    chunked = Retina(RetinaParams(chunk_frames=101), preset='small', seed=1).rates(movie)
    np.testing.assert_allclose(chunked, rate, atol=1e-3)
    future = movie.copy(); future[2000:] = -movie[2000:]
    np.testing.assert_allclose(retina.rates(future)[:2000], rate[:2000], atol=1e-4)
    assert not np.allclose(retina.rates(future)[2001:], rate[2001:])


def test_ablations_change_the_response(retina):
    movie = natural_movie(1000, 16, seed=8)
    base = retina.rates(movie)
    for name in ABLATIONS:
        assert not np.allclose(retina.rates(movie, ablate=(name,)), base), name


def test_natural_movie_sources(tmp_path):
    import skimage.io
    rng = np.random.default_rng(0)
    for i in range(2): skimage.io.imsave(tmp_path / f'scene{i}.png', (rng.random((120, 140)) * 255).astype(np.uint8))
    (tmp_path / 'notes.txt').write_text('not an image')
    assert len(natural_images(tmp_path)) == 2
    movie = natural_movie(250, 16, seed=0, source=tmp_path)
    assert movie.shape == (250, 16, 16) and np.isfinite(movie).all()
    assert not np.array_equal(natural_movie(250, 16, seed=1, source=tmp_path), movie)
    empty = tmp_path / 'empty'; empty.mkdir()
    with pytest.raises(ValueError, match='holds no'): natural_images(empty)
    with pytest.raises(ValueError, match='at least'): natural_movie(10, 50, source=tmp_path)  # images too small


def test_simulate_experiment_is_deterministic_and_loadable(tmp_path):
    from retina_nbdev.data import load_recording, read_ground_truth
    preset = get_preset('tiny').replace(train_seconds=20, test_seconds=5)
    path = simulate_experiment(preset, 'whitenoise', seed=3, out=tmp_path)
    assert path == tmp_path / 'insilico' / 'whitenoise.h5'
    again = simulate_experiment(preset, 'whitenoise', seed=3, out=tmp_path, experiment='again')
    other = simulate_experiment(preset, 'whitenoise', seed=4, out=tmp_path, experiment='other')
    with h5py.File(path) as a, h5py.File(again) as b, h5py.File(other) as c:
        for key in ('train/stimulus', 'train/response/binned', 'test/response/firing_rate_10ms', 'test/repeats/cell02'):
            np.testing.assert_array_equal(a[key][:], b[key][:])
        assert not np.array_equal(a['train/response/binned'][:], c['train/response/binned'][:])
        assert a['test/repeats/cell01'].shape == (3, 500)
        assert json.loads(a.attrs['ablate']) == []
    truth = read_ground_truth(path)
    assert truth['true_rate_test'].shape == (4, 500) and truth['temporal_filters'].shape == (4, 60)
    assert json.loads(truth['params'])['gc_gain'] == RetinaParams().gc_gain
    recording = load_recording(path, history=preset.history)
    assert recording.num_cells == 4


def test_ablated_recording(tmp_path):
    preset = get_preset('tiny').replace(train_seconds=5, test_seconds=2)
    path = simulate_experiment(preset, 'whitenoise', seed=0, out=tmp_path, ablate=('off_fast',))
    with h5py.File(path) as f:
        assert f['train/response/binned'][0].sum() == 0  # the off_fast cell is silent
        assert json.loads(f.attrs['ablate']) == ['off_fast']

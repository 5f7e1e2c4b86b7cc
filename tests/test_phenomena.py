"""Known-answer tests of `retina_nbdev.phenomena`, heavier than the notebook's: the index convention on a real BN-CNN,
hand-built systems over many lags and periods, stimulus geometry, and the suite on a second retina."""
import numpy as np
import pytest
from scipy import signal

from retina_nbdev.core import PIXEL_UM
from retina_nbdev.phenomena import (PHENOMENA, bar_frames, compare_systems, drifting_bar, flash_train, in_bins,
                                    measure_anticipation, measure_latency, measure_osr, measure_reversal, peak_position,
                                    presence, reproduction, responses, reversing_bar, run_suite, system_input)
from retina_nbdev.retina import Retina


@pytest.fixture(scope='module')
def retina():
    return Retina(preset='tiny', seed=1)


@pytest.fixture(scope='module')
def cnn():
    from retina_nbdev.core import seed_everything
    from retina_nbdev.models import bn_cnn
    seed_everything(0)
    return bn_cnn('tiny')


def test_bn_cnn_chunked_responses_match_plain_windows(cnn):
    "The FFT path, a stack of movies and small batches all give what `model.predict` gives on the windows."
    from retina_nbdev.windows import window_dataset
    movies = np.random.default_rng(0).standard_normal((3, 60, 16, 16)).astype(np.float32)
    stacked = responses(cnn, movies, batch_frames=100)  # one movie per FFT batch
    assert stacked.shape == (3, 40, 4)
    for movie, rates in zip(movies, stacked):
        np.testing.assert_allclose(rates, cnn.predict(window_dataset(movie, 20), verbose=0), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(responses(cnn, movie), rates, rtol=1e-5, atol=1e-6)
    assert system_input(cnn) == (20, (16, 16))


def test_retina_responses_are_its_rates_trimmed(retina):
    movie = np.random.default_rng(1).standard_normal((80, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(responses(retina, movie), retina.rates(movie)[20:])
    np.testing.assert_array_equal(responses(retina, movie, history=30, ablate=('amacrine',)), retina.rates(movie, ('amacrine',))[30:])
    np.testing.assert_array_equal(in_bins(responses(retina, movie), 20)[20:], retina.rates(movie)[20:])


def test_zscore_is_applied_before_the_system():
    movie = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    out = responses(lambda m: m[:, 0, :1], movie, history=2, zscore=(1.0, 2.0))
    np.testing.assert_array_equal(out[:, 0], (movie[2:, 0, 0] - 1) / 2)


@pytest.mark.parametrize('call, message', [
    (lambda: responses(lambda m: m[:, 0, :1], np.zeros((5, 2)), history=2), 'must be (T, H, W)'),
    (lambda: responses(lambda m: m[:, 0, :1], np.zeros((2, 2, 2)), history=2), 'shorter than the history'),
    (lambda: responses(lambda m: m[:, 0, 0], np.zeros((6, 2, 2)), history=2), 'need (T - history, n_cells)'),
    (lambda: responses(lambda m: m[:4, 0], np.zeros((6, 2, 2)), history=2), 'need (T - history, n_cells)'),
    (lambda: measure_latency(lambda m: m[:, 0, :1], history=2), 'pass `pixels`'),
    (lambda: measure_osr(Retina(preset='tiny'), periods=[6, 8], reference=10), 'reference period 10'),
    (lambda: responses(Retina(preset='tiny'), np.zeros((30, 12, 12))), 'system takes (16, 16)'),
    (lambda: responses(None, np.zeros((30, 12, 12))), 'unknown system'),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError) as error: call()
    assert message in str(error.value)


def test_model_history_must_agree(cnn):
    with pytest.raises(ValueError, match='differs from the model'): responses(cnn, np.zeros((40, 16, 16)), history=10)
    with pytest.raises(ValueError, match='system takes'): responses(cnn, np.zeros((40, 15, 16)))
    with pytest.raises(ValueError, match='shorter than the history'): responses(cnn, np.zeros((20, 16, 16)))


def test_bar_area_and_mirror_symmetry():
    "At any sub-pixel position the bar's area is exact, and the drawing is mirror symmetric off the sub-pixel grid."
    positions = np.random.default_rng(2).uniform(2, 13, 200)
    frames = bar_frames(positions, pixels=16, width=2.4, intensity=1.0)
    np.testing.assert_allclose(frames[:, 0].sum(1), 2.4, atol=1e-5)
    np.testing.assert_allclose(frames[:, 0, ::-1], bar_frames(15 - positions, pixels=16, width=2.4, intensity=1.0)[:, 0], atol=1e-6)
    centre_of_mass = (frames[:, 0] * np.arange(16)).sum(1) / frames[:, 0].sum(1)
    np.testing.assert_allclose(centre_of_mass, positions, atol=0.2)  # within a sub-pixel


def test_bar_paths():
    _, right = drifting_bar(0.1, 1, pixels=10, before=3, after=2)
    _, left = drifting_bar(0.1, -1, pixels=10, before=3, after=2)
    np.testing.assert_allclose(right[3:-2], left[3:-2][::-1])
    np.testing.assert_allclose(np.diff(right[3:-2]), 0.1)
    movie, turn, positions = reversing_bar(5.0, speed=0.25, start=-1.0, pixels=10, before=4)
    assert positions[turn] == 5.0 and len(movie) == len(positions) == 4 + 2 * 24 + 1
    np.testing.assert_allclose(positions[turn - 24:turn][::-1], positions[turn + 1:])


def test_flash_train_timing():
    movie, omitted = flash_train(period=7, num_flashes=5, before=11, after=3)
    onsets = np.flatnonzero(np.diff((movie[:, 0, 0] < 0).astype(int)) == 1) + 1
    np.testing.assert_array_equal(onsets, 11 + 7 * np.arange(5))
    assert omitted == 11 + 35 and len(movie) == omitted + 3


@pytest.mark.parametrize('lag', [1, 2, 5, 9])
def test_pure_delay_reports_its_delay(lag):
    def delayed(movie):
        dark = np.maximum(-movie[:, 0, :1], 0) * 20
        return np.concatenate([np.zeros((lag, 1)), dark[:-lag]])
    m = measure_latency(delayed, duration=1, history=10, pixels=3)
    np.testing.assert_array_equal(m.table.latency_ms[m.table.intensity < -0.2].unique(), [10.0 * lag])
    assert not m.summary.present[0]


def test_keras_pure_delay_is_one_bin(cnn):
    "A BN-CNN's output row for bin t sees frames before t only: a model copying the newest frame has latency 10 ms."
    import keras
    inputs = keras.Input((8, 8, 6), name='stimulus')
    conv = keras.layers.Conv2D(1, 8, use_bias=False, name='conv1')
    model = keras.Model(inputs, keras.layers.Flatten()(conv(inputs)))
    kernel = np.zeros((8, 8, 6, 1), np.float32); kernel[4, 4, -1] = -30
    conv.set_weights([kernel])
    assert measure_latency(model, duration=1).table.latency_ms.dropna().unique().tolist() == [10.0]


@pytest.mark.parametrize('lag, speed', [(0, 0.08), (2, 0.08), (5, 0.16)])
def test_linear_system_lead_is_minus_speed_times_delay(lag, speed):
    weights = np.exp(-0.5 * (np.arange(20) - 9.6) ** 2 / 1.5 ** 2)
    def linear(movie):
        out = -20 * movie[:, 0, :] @ weights[:, None]
        return np.concatenate([np.zeros((lag, 1)), out[:len(out) - lag]])
    m = measure_anticipation(linear, speeds=(speed,), history=10, pixels=20)
    assert abs(m.summary.lead_um[0] - (-speed * lag * PIXEL_UM)) < 2.0  # the peak interpolation's error


@pytest.mark.parametrize('period', [6, 8, 12, 16])
def test_resonator_osr_at_the_expected_time(period):
    poles = [1, -2 * 0.97 * np.cos(2 * np.pi / period), 0.97 ** 2]
    resonator = lambda movie: 10 * np.maximum(signal.lfilter([1.0], poles, -movie[:, 0, :1], axis=0), 0)
    m = measure_osr(resonator, periods=[period], reference=period, history=10, pixels=2)
    trace = m.traces.sort_values('time_ms')
    last = trace[(trace.time_ms >= -10 * period) & (trace.time_ms < 0)]
    assert m.table.time_ms[0] == last.time_ms.iloc[last.rate.argmax()] + 10 * period


def test_peak_position_flat_top_and_edges():
    x = np.arange(10.0)
    assert peak_position(x, [0, 1, 3, 3, 3, 1, 0, 0, 0, 0]) == 3.0
    assert peak_position(x, [5, 1, 0, 0, 0, 0, 0, 0, 0, 0]) == 0.0
    assert peak_position(x, [np.nan, 1, 2, 1, 0, 0, 0, 0, 0, 0]) == 2.0


def test_suite_on_a_second_retina(retina):
    "Another seed (other cell positions): each type shows its phenomena, and ablations remove them."
    suite = run_suite(retina)
    shown = presence(suite)
    expected = {'off_fast': [True, False, False, True], 'off_dual': [True, False, False, True],
                'on_off': [False, True, True, False], 'on_slow': [False, True, False, False]}
    for (cell, cell_type), row in shown.iterrows(): assert row.tolist() == expected[cell_type], (cell_type, row)
    on_off = retina.cell_types.index('on_off')
    no_on_fast = run_suite(retina, ablate=('on_fast',))
    assert not presence(no_on_fast).loc[on_off, ['osr', 'reversal']].any(axis=None)
    side = compare_systems(suite, no_on_fast, ('intact', 'ablated'))
    table = reproduction(side, ('intact', 'ablated')).set_index('phenomenon')
    assert table.index.tolist() == list(PHENOMENA)
    assert not table.loc['reversal', 'reproduces'] and table.loc['reversal', 'reproduced (ablated)'] == 0  # ON-fast carries it
    assert table.loc['anticipation', 'reproduces']  # an OFF computation survives losing the ON-fast pathway
    osr = side[(side.phenomenon == 'osr') & (side.cell == on_off) & (side.metric == 'peak_over_baseline')]
    assert (osr.difference < 0).all()  # the on_off cell's OSR falls when ON-fast is silenced


def test_reversal_burst_is_synchronous_across_positions(retina):
    on_off = retina.cell_types.index('on_off')
    m = measure_reversal(retina)
    rows = m.table[(m.table.cell == on_off) & m.table.burst_ok]
    assert len(rows) >= 5 and rows.burst_latency_ms.std(ddof=0) <= 15

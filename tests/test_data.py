"Bad inputs, round trips, read-only loading, atomic writes and reproducible shuffling of `retina_nbdev.data`."
import os

import h5py
import numpy as np
import pytest

from retina_nbdev.data import load_recording, read_ground_truth, recording_path, repeat_key, toy_recording, write_recording
from retina_nbdev.windows import window_dataset

HISTORY = 10


def blocks(T=120, T_test=60, num_cells=3, num_repeats=2, side=6, seed=0):
    "Random but valid `train` and `test` dicts for `write_recording`."
    rng = np.random.default_rng(seed)
    def block(T):
        counts = rng.poisson(1.0, (num_cells, T))
        return dict(stimulus=rng.standard_normal((T, side, side)).astype(np.float32),
                    firing_rate_10ms=rng.random((num_cells, T)).astype(np.float32) * 50, binned=counts)
    train, test = block(T), block(T_test)
    test['repeats'] = rng.random((num_cells, num_repeats, T_test)).astype(np.float32) * 50
    return train, test


@pytest.fixture
def good(tmp_path):
    "A valid recording file with a ground truth, in the layout's place."
    train, test = blocks()
    truth = {'true_rate_test': test['firing_rate_10ms'] + 1, 'circuit': {'types': ['ON fast', 'OFF slow'], 'tau': 0.05}}
    return write_recording(recording_path(tmp_path, 'exp', 'whitenoise'), train, test, ground_truth=truth)


def edited(path, edit):
    "Apply `edit(h5py.File)` to a valid file in place (the writer itself refuses bad input); return the path."
    with h5py.File(path, 'r+') as f: edit(f)
    return path


def replace(key, value):
    "An edit that replaces dataset `key` with `value`."
    def edit(f):
        del f[key]
        f[key] = value
    return edit


def expect_error(path, *fragments, **kwargs):
    "Loading `path` raises a ValueError whose message names the file and every fragment."
    with pytest.raises(ValueError) as info: load_recording(path, kwargs.pop('history', HISTORY), **kwargs)
    message = str(info.value)
    assert os.path.basename(str(path)) in message, message
    for fragment in fragments: assert fragment in message, message


# --- files that are not recordings

def test_missing_file(tmp_path):
    expect_error(tmp_path/'nothere.h5', 'no such recording file')
    with pytest.raises(ValueError, match='nothere.h5: no such recording file'): read_ground_truth(tmp_path/'nothere.h5')


def test_not_hdf5(tmp_path):
    (tmp_path/'notes.h5').write_text('not a recording')
    expect_error(tmp_path/'notes.h5', 'not an HDF5 file')


def test_truncated_hdf5(good):
    data = good.read_bytes()
    good.write_bytes(data[:len(data) // 3])
    with pytest.raises(ValueError, match='whitenoise.h5'): load_recording(good, HISTORY)


# --- missing groups and keys

@pytest.mark.parametrize('key', ['train', 'test/stimulus', 'train/time', 'train/response/firing_rate_10ms',
                                 'test/response/binned', 'test/repeats/cell02', 'test/repeats'])
def test_missing_group_or_key(good, key):
    expected = {'train': 'train/stimulus', 'test/repeats': 'test/repeats/cell01'}.get(key, key)
    expect_error(edited(good, lambda f: f.__delitem__(key)), f"missing '{expected}'")


# --- lengths, ranks, values

def test_stimulus_and_response_lengths_differ(good):
    expect_error(edited(good, replace('train/response/firing_rate_10ms', np.ones((3, 119)))),
                 "'train/response/firing_rate_10ms' has 119 bins but 'train/stimulus' has 120 frames")


def test_time_length_differs(good):
    expect_error(edited(good, replace('test/time', np.arange(59.))), "'test/time' has 59 bins")


def test_repeats_length_differs(good):
    expect_error(edited(good, replace('test/repeats/cell03', np.ones((2, 59)))), 'test/repeats/cellNN', '(2, 59)')


def test_stimulus_not_3d(good):
    expect_error(edited(good, replace('train/stimulus', np.ones((120, 36)))), "'train/stimulus' must be 3-D")


def test_responses_not_2d(good):
    expect_error(edited(good, replace('test/response/firing_rate_10ms', np.ones(60))),
                 "'test/response/firing_rate_10ms' must be 2-D")


def test_repeats_not_2d(good):
    expect_error(edited(good, replace('test/repeats/cell01', np.ones((2, 60, 1)))), "'test/repeats/cell01' must be 2-D")


@pytest.mark.parametrize('key,bad', [('train/stimulus', np.nan), ('test/stimulus', np.inf),
                                     ('train/response/firing_rate_10ms', np.nan), ('test/repeats/cell02', np.inf),
                                     ('train/time', np.nan)])
def test_nan_or_inf(good, key, bad):
    def edit(f):
        data = f[key][()]
        data.flat[7] = bad
        replace(key, data)(f)
    expect_error(edited(good, edit), f"'{key}' contains NaN or inf")


@pytest.mark.parametrize('key,bad', [('train/stimulus', np.nan), ('train/stimulus', -np.inf), ('test/stimulus', np.inf),
                                     ('test/stimulus', np.nan)])
def test_nan_or_inf_in_a_float16_load(good, key, bad):
    "Read from the file chunk by chunk, not checked in memory first: the passes that z-score it find the bad value."
    def edit(f):
        data = f[key][()]
        data.flat[-3] = bad
        replace(key, data)(f)
    expect_error(edited(good, edit), f"'{key}' contains NaN or inf", dtype='float16')


@pytest.mark.parametrize('key', ['train/response/firing_rate_10ms', 'test/response/binned', 'test/repeats/cell01'])
def test_negative_rates(good, key):
    expect_error(edited(good, lambda f: replace(key, -f[key][()] - 1)(f)), f"'{key}' has negative values")


def test_cells_differ_between_blocks(good):
    expect_error(edited(good, lambda f: [replace(f'test/response/{k}', f[f'test/response/{k}'][:2])(f)
                                         for k in ('firing_rate_10ms', 'binned')]), 'has 3 cells but', 'has 2')


def test_frame_sizes_differ(good):
    expect_error(edited(good, replace('test/stimulus', np.ones((60, 5, 6)))), "'test/stimulus' frames differ")


def test_zero_variance_stimulus(good):
    expect_error(edited(good, replace('train/stimulus', np.full((120, 6, 6), 0.5))), "'train/stimulus' has zero variance")


def test_bad_true_rate(good):
    expect_error(edited(good, replace('ground_truth/true_rate_test', np.ones((3, 50)))), 'ground_truth/true_rate_test')


# --- arguments

@pytest.mark.parametrize('cells,fragment', [([], 'empty cell selection'), ([3], 'cell 3 out of range'),
                                            ([-1], 'cell -1 out of range'), ([0, 0], 'repeats a cell'),
                                            ([1.5], 'cell 1.5 out of range')])
def test_bad_cell_selection(good, cells, fragment):
    expect_error(good, fragment, cells=cells)


@pytest.mark.parametrize('history,nskip', [(60, 0), (40, 25), (200, 0)])
def test_history_longer_than_data(good, history, nskip):
    expect_error(good, f'history {history} + nskip {nskip} is longer than the data', history=history, nskip=nskip)


@pytest.mark.parametrize('history,nskip,fragment', [(0, 0, 'history must be an integer >= 1'),
                                                    (10, -1, 'nskip must be an integer >= 0'),
                                                    (2.5, 0, 'history must be an integer')])
def test_bad_history_or_nskip(good, history, nskip, fragment):
    expect_error(good, fragment, history=history, nskip=nskip)


# --- the writer refuses what the loader refuses

@pytest.mark.parametrize('change,fragment', [
    (lambda tr, te: tr.update(binned=tr['binned'][:, 1:]), "'train/response/binned' has 119 bins but 'train/stimulus' has 120"),
    (lambda tr, te: tr.update(stimulus=tr['stimulus'][0]), "'train/stimulus' must be 3-D"),
    (lambda tr, te: te.update(repeats=te['repeats'][0]), "'test/repeats' must be 3-D"),
    (lambda tr, te: te['firing_rate_10ms'].__setitem__((0, 3), np.nan), "'test/response/firing_rate_10ms' contains NaN"),
    (lambda tr, te: tr['firing_rate_10ms'].__setitem__((1, 3), -2), "'train/response/firing_rate_10ms' has negative"),
    (lambda tr, te: te.pop('repeats'), "'test' is missing keys ['repeats']"),
    (lambda tr, te: tr.update(rates=1), "unknown keys ['rates']"),
    (lambda tr, te: te.update(stimulus=te['stimulus'][:, :5]), "frames are (6, 6) but 'test/stimulus' frames are (5, 6)"),
    (lambda tr, te: te.update(repeats=te['repeats'][:2]), "'test' responses disagree on the number of cells"),
])
def test_writer_refuses_bad_input(tmp_path, change, fragment):
    train, test = blocks()
    change(train, test)
    with pytest.raises(ValueError) as info: write_recording(tmp_path/'bad.h5', train, test)
    assert fragment in str(info.value) and 'bad.h5' in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_nothing_behind(tmp_path):
    train, test = blocks()
    target = tmp_path/'rec.h5'
    with pytest.raises(ValueError, match='cannot store a value of type object'):  # fails half-way: the arrays are already written
        write_recording(target, train, test, ground_truth={'ok': 1, 'bad': object()})
    assert list(tmp_path.iterdir()) == []
    write_recording(target, train, test, attrs={'version': 1})
    before = target.read_bytes()
    with pytest.raises(ValueError, match="key 3 must be a non-empty string"):
        write_recording(target, train, test, ground_truth={3: 'x'})
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ['rec.h5']


# --- round trip, read-only, pairing, determinism

def test_round_trip(tmp_path):
    train, test = blocks()
    truth = {'true_rate_test': test['firing_rate_10ms'] * 2, 'seed': 7, 'gain': 0.5, 'flag': True, 'name': 'ON fast',
             'none': None, 'names': ['a', 'bc'], 'nested': {'deeper': {'kernel': np.arange(6.).reshape(2, 3)}},
             'cells': [{'type': 'ON'}, {'type': 'OFF', 'x': 3}], 'empty': {}}
    path = write_recording(tmp_path/'a'/'b.h5', train, test, ground_truth=truth,
                           attrs={'preset': 'tiny', 'seed': 3, 'params': {'a': 1}})
    with h5py.File(path, 'r') as f:
        for name, block in (('train', train), ('test', test)):
            np.testing.assert_array_equal(f[f'{name}/stimulus'][()], block['stimulus'])
            np.testing.assert_array_equal(f[f'{name}/response/firing_rate_10ms'][()], block['firing_rate_10ms'])
            np.testing.assert_array_equal(f[f'{name}/response/binned'][()], block['binned'])
            np.testing.assert_allclose(f[f'{name}/time'][()], np.arange(len(block['stimulus'])) / 100)
        for cell in range(3): np.testing.assert_array_equal(f[repeat_key(cell)][()], test['repeats'][cell])
        assert (f.attrs['preset'], f.attrs['seed']) == ('tiny', 3)
    back = read_ground_truth(path)
    assert list(back) == list(truth)  # insertion order kept
    np.testing.assert_array_equal(back.pop('true_rate_test'), truth['true_rate_test'])
    np.testing.assert_array_equal(back.pop('names'), ['a', 'bc'])
    np.testing.assert_array_equal(back['nested'].pop('deeper')['kernel'], truth['nested']['deeper']['kernel'])
    assert back == {'seed': 7, 'gain': 0.5, 'flag': True, 'name': 'ON fast', 'none': None, 'nested': {},
                    'cells': [{'type': 'ON'}, {'type': 'OFF', 'x': 3}], 'empty': {}}
    assert type(back['seed']) is int and type(back['flag']) is bool
    rec = load_recording(path, HISTORY, nskip=5, cells=[2, 1])
    np.testing.assert_array_equal(rec.train_rates, train['firing_rate_10ms'][[2, 1], 15:].T)
    np.testing.assert_array_equal(rec.test_repeats, test['repeats'][[2, 1]][:, :, 15:].transpose(1, 2, 0))
    np.testing.assert_allclose(rec.true_test_rates, truth['true_rate_test'][[2, 1], 15:].T)
    np.testing.assert_allclose(rec.stimulus('train') * rec.stimulus_std + rec.stimulus_mean, train['stimulus'][5:], atol=1e-5)
    assert rec.stimulus_mean == pytest.approx(train['stimulus'].mean(dtype=np.float64))
    assert rec.stimulus_std == pytest.approx(train['stimulus'].std(dtype=np.float64))
    assert rec.attrs == {'preset': 'tiny', 'seed': 3, 'params': '{"a": 1}'}


def test_real_file_has_no_ground_truth(tmp_path):
    path = write_recording(tmp_path/'real.h5', *blocks())
    assert read_ground_truth(path) is None
    rec = load_recording(path, HISTORY)
    assert rec.ground_truth is None and rec.true_test_rates is None


def test_loader_never_writes(good):
    before, stat = good.read_bytes(), os.stat(good)
    rec = load_recording(good, HISTORY)
    for _ in rec.dataset('train', batch_size=32): pass
    read_ground_truth(good)
    assert good.read_bytes() == before and os.stat(good).st_mtime_ns == stat.st_mtime_ns


def test_pairing_rule_on_planted_answer(tmp_path):
    rec = load_recording(toy_recording(tmp_path/'toy.h5', pixels=8, train_frames=200, test_frames=80), history=HISTORY)
    (y0, x0) = rec.ground_truth['pixels'][0]
    batches = list(rec.dataset('train', batch_size=64, shuffle=False))
    windows, rates = np.concatenate([x.numpy() for x, _ in batches]), np.concatenate([y.numpy() for _, y in batches])
    assert len(rates) == rec.num_samples('train')
    raw_last = windows[..., -1] * rec.stimulus_std + rec.stimulus_mean
    np.testing.assert_allclose(rates[:, 0], 10 * (1 + raw_last[:, y0, x0]), atol=1e-4)
    assert not np.allclose(rates[:, 0], 10 * (1 + windows[:, y0, x0, -2] * rec.stimulus_std + rec.stimulus_mean))


def test_dataset_is_deterministic_for_a_seed(good):
    rec = load_recording(good, HISTORY)
    def epoch(seed): return [(x.numpy(), y.numpy()) for x, y in rec.dataset('train', batch_size=16, seed=seed)]
    first, again, other = epoch(1), epoch(1), epoch(2)
    for (xa, ya), (xb, yb) in zip(first, again):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(first[0][1], other[0][1])
    ordered = np.concatenate([y.numpy() for _, y in rec.dataset('validation', batch_size=7)])
    np.testing.assert_array_equal(ordered, rec.targets('validation'))


def test_bad_split_and_window_range(good):
    rec = load_recording(good, HISTORY)
    with pytest.raises(ValueError, match="split must be one of train, validation, test; got 'val'"): rec.dataset('val')
    with pytest.raises(ValueError, match='0 <= start < stop'): window_dataset(np.zeros((20, 2, 2)), 5, start=15)
    with pytest.raises(ValueError, match='one per sample'): window_dataset(np.zeros((20, 2, 2)), 5, targets=np.zeros(20))

"The paper notebooks' shared helpers on small inputs with known answers (the notebook checks them on a finished run)."
import numpy as np
import pandas as pd
import pytest

from retina_nbdev.paper import (bar_centre, channel_color, channel_type, completeness_error, describe_reductions, event_frame,
                                latency_table, read_reductions, reconstruction, reproduced_cells, shown_cell, type_grid)
from retina_nbdev.phenomenon_reduction import REDUCTION_COLUMNS  # the reduce stage's columns, defined where a reduced cell is scored


def test_read_reductions_text_columns_and_empty(tmp_path):
    (tmp_path/'reductions.csv').write_text('phenomenon,cell,keep,types,truth,precision,recall\n'
                                           'osr,3,6,off_fast,,,\nlatency,0,1 5,on_slow off_fast,off_fast,0.5,1.0\n')
    table = read_reductions(tmp_path)
    assert table.keep.tolist() == ['6', '1 5'] and table.truth.tolist() == ['', 'off_fast']
    assert read_reductions(tmp_path, 'latency').cell.tolist() == [0]
    (tmp_path/'reductions.csv').write_text('\n')
    assert read_reductions(tmp_path).columns.tolist() == list(REDUCTION_COLUMNS)
    assert read_reductions(tmp_path/'missing', 'osr').empty


def test_reproduced_cells_without_a_retina(tmp_path):
    pd.DataFrame(dict(phenomenon=['osr', 'osr', 'osr', 'latency'], cell=[0, 0, 1, 1], present=[True, True, True, False],
                      metric='m', value=0.0)).to_csv(tmp_path/'cnn_summary.csv', index=False)
    assert reproduced_cells(tmp_path, 'osr') == (2, None) and reproduced_cells(tmp_path, 'latency') == (0, None)


def test_events_of_synthetic_stimuli():
    train = np.zeros((40, 2, 2)); train[[3, 4, 10, 11, 17, 18]] = -1  # flashes every 7 frames
    assert (event_frame(train, 'latency'), event_frame(train, 'osr'), event_frame(train, 'anticipation')) == (3, 24, 3)
    bar = np.zeros((5, 3, 6))
    for frame, x in enumerate([0, 2, 4, 1, 0]): bar[frame, :, x] = -1
    np.testing.assert_allclose(bar_centre(bar), [0, 2, 4, 1, 0])
    assert event_frame(bar, 'reversal') == 2
    with pytest.raises(ValueError, match='unknown phenomenon'): event_frame(bar, 'flicker')


def test_reduction_numbers_and_labels():
    result = dict(time_courses=np.array([[1.0, 1.0], [0.0, 2.0]]), response=np.array([2.0, 1.0]), keep=np.array([1]), types=np.array(['on_fast']))
    assert completeness_error(result) == pytest.approx(1 / 3)  # |(2, 2) - (2, 1)| summed over Σ|r| = 3
    assert reconstruction(result) == pytest.approx(1 - 2 / 5) and reconstruction(result, [0, 1]) == pytest.approx(1 - 1 / 5)
    assert channel_type(result, 1) == 'on_fast'
    with pytest.raises(ValueError): channel_type(result, 0)
    assert {channel_color(c) for c in range(16)}.isdisjoint({'C3', 'C7'})


def test_tables():
    traces = pd.DataFrame(dict(intensity=[-1.0] * 4 + [-2.0] * 4, time_ms=[-10, 0, 10, 20] * 2, cell=7,
                               rate=[0, 0, 0, 9, 0, 9, 0, 0]))
    assert latency_table(traces).latency_ms.tolist() == [0.0, 20.0]  # by intensity: -2 answers at once, -1 after 20 ms
    comparison = pd.DataFrame(dict(phenomenon='latency', metric='latency_drop_ms', cell=[0, 1, 2], present_retina=[True, True, False],
                                   present_cnn=[False, True, True]))
    assert shown_cell(comparison, 'latency') == 1
    grid = type_grid(pd.DataFrame(dict(phenomenon=['osr', 'osr'], types=['on_fast', 'on_fast off_slow'])), lambda row: row.types.split())
    assert grid.loc['osr', 'on_fast'] == 1.0 and grid.loc['osr', 'off_slow'] == 0.5 and grid.loc['latency'].isna().all()
    row = dict(cell=1, keep='1 5', types='on_slow off_fast', reconstruction=0.93, reduced_r=0.9, truth='off_fast', precision=0.5, recall=1.0)
    assert describe_reductions(pd.DataFrame([row])) == ['cell 1: 2 channel(s) kept (on_slow off_fast), reconstruction 0.93, reduced r 0.90; '
                                                        'truth: off_fast; precision 0.50, recall 1.00']

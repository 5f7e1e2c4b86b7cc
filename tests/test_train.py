"""Training survives SIGKILL: a killed and restarted run ends exactly where an uninterrupted one does."""
import json, signal, subprocess, sys, time

import numpy as np
import pytest

EPOCHS = 6
SCRIPT = '''
import sys, numpy as np
from pathlib import Path
from retina_nbdev.core import seed_everything
from retina_nbdev.data import load_recording
from retina_nbdev.models import bn_cnn
from retina_nbdev.train import fit, TrainingConfig
recording_path, out, epochs = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
recording = load_recording(recording_path, history=20)
seed_everything(0)
model = bn_cnn('tiny', num_cells=recording.num_cells)
state = fit(model, recording, out, TrainingConfig(epochs=epochs, batch_size=64, learning_rate=5e-3), progress=False)
np.savez(out/'final.npz', *model.get_weights())
print('epochs', state.epoch)
'''


def _train(recording, out, **kwargs):
    return subprocess.Popen([sys.executable, '-c', SCRIPT, str(recording), str(out), str(EPOCHS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _finished_epochs(out):
    try: return json.loads((out/'state.json').read_text())['epoch']
    except (FileNotFoundError, json.JSONDecodeError): return 0


@pytest.fixture(scope='module')
def recording(tmp_path_factory):
    from retina_nbdev.data import toy_recording
    return toy_recording(tmp_path_factory.mktemp('data')/'toy.h5', train_frames=3000, test_frames=300)


def test_resume_after_sigkill(recording, tmp_path):
    whole = _train(recording, tmp_path/'whole')
    killed = _train(recording, tmp_path/'killed')
    deadline = time.time() + 240
    while _finished_epochs(tmp_path/'killed') < 2 and killed.poll() is None and time.time() < deadline: time.sleep(0.05)
    assert killed.poll() is None, f"training ended before it could be killed: {killed.communicate()[1][-2000:]}"
    killed.send_signal(signal.SIGKILL); killed.wait()
    killed_at = _finished_epochs(tmp_path/'killed')
    assert 2 <= killed_at < EPOCHS
    restarted = _train(recording, tmp_path/'killed')
    for process in (whole, restarted):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        assert f'epochs {EPOCHS}' in out
    state = json.loads((tmp_path/'killed'/'state.json').read_text())
    assert [row['epoch'] for row in state['history']] == list(range(1, EPOCHS + 1))  # none lost, none repeated
    with np.load(tmp_path/'whole'/'final.npz') as a, np.load(tmp_path/'killed'/'final.npz') as b:
        assert len(a.files) == len(b.files)
        for key in a.files: np.testing.assert_array_equal(a[key], b[key])

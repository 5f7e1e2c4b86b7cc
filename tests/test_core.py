"""Presets, seeding, artifact paths: the foundation every other module relies on."""
import os, subprocess, sys

import numpy as np
import pytest

from retina_nbdev.core import PRESETS, artifact_dir, get_preset, seed_everything


def test_tiny_under_test(monkeypatch):
    monkeypatch.setenv('RETINA_PRESET', 'paper')
    assert get_preset().name == 'tiny'  # pytest is running, so tests never pick a big preset by accident


def _preset_in_fresh_process(env):
    code = 'from retina_nbdev.core import get_preset; print(get_preset().name)'
    clean = {k: v for k, v in os.environ.items() if k not in ('IN_TEST', 'PYTEST_CURRENT_TEST', 'RETINA_PRESET')}
    out = subprocess.run([sys.executable, '-c', code], env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_environment_honoured_outside_tests():
    assert _preset_in_fresh_process({'RETINA_PRESET': 'paper'}) == 'paper'
    assert _preset_in_fresh_process({}) == 'small'
    assert _preset_in_fresh_process({'IN_TEST': '1', 'RETINA_PRESET': 'paper'}) == 'tiny'


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown preset 'huge'.*tiny, small, paper"):
        get_preset('huge')


def test_preset_sizes_follow_the_paper():
    paper = PRESETS['paper']
    assert (paper.pixels, paper.history, paper.conv1_kernel, paper.conv2_kernel) == (50, 40, 15, 11)
    assert (paper.conv1_size, paper.conv2_size) == (36, 26)
    for preset in PRESETS.values():
        assert preset.conv2_size > 0 and preset.nskip < preset.train_frames


def _train_one_step(seed):
    import keras
    seed_everything(seed)
    inputs = keras.Input((6, 6, 3))
    hidden = keras.layers.Conv2D(2, 3, name='conv1')(inputs)
    outputs = keras.layers.Dense(2, activation='softplus')(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-2), 'poisson')
    x = np.random.randn(16, 6, 6, 3).astype('float32')
    model.fit(x, np.random.rand(16, 2).astype('float32'), epochs=1, batch_size=8, shuffle=True, verbose=0)
    return model.get_weights()


def test_seeding_gives_identical_weights():
    first, second, other = _train_one_step(0), _train_one_step(0), _train_one_step(3)
    for a, b in zip(first, second): np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0], other[0])


def test_bad_seed():
    with pytest.raises(ValueError, match='seed'): seed_everything(-1)


def test_artifact_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('RETINA_HOME', str(tmp_path/'home'))
    assert artifact_dir('data') == tmp_path/'home'/'data' and (tmp_path/'home'/'data').is_dir()


def _threads_after_matmul(env):
    code = ('import os, retina_nbdev.core, tensorflow as tf; x = tf.random.normal((500, 500)); '
            '[tf.linalg.matmul(x, x) for _ in range(3)]; '
            'print(os.environ.get("TF_NUM_INTRAOP_THREADS"), len(os.listdir("/proc/self/task")))')
    clean = {k: v for k, v in os.environ.items() if k not in ('RETINA_THREADS', 'TF_NUM_INTRAOP_THREADS', 'OMP_NUM_THREADS')}
    out = subprocess.run([sys.executable, '-c', code], env={**clean, **env}, capture_output=True, text=True, check=True)
    variable, threads = out.stdout.split()[-2:]
    return variable, int(threads)


@pytest.mark.skipif(not os.path.isdir('/proc/self/task') or os.cpu_count() < 2, reason='needs Linux and 2+ cores')
def test_threads_set_before_tensorflow_starts():
    variable, pinned = _threads_after_matmul({'RETINA_THREADS': '1'})
    default_variable, default = _threads_after_matmul({})
    assert variable == '1' and default_variable == 'None'
    assert pinned < default  # TensorFlow started fewer worker threads


def test_tensorflow_starts_silently(tmp_path):
    """A process importing the library, then TensorFlow, and its local pool's worker (which starts TensorFlow too) write
    nothing to stderr but what they write themselves: no absl notice, oneDNN, CUDA or cuInit lines."""
    code = ('import sys, retina_nbdev.core, tensorflow as tf; tf.constant(1.0) + 1; print("driver", file=sys.stderr)\n'
            'from retina_nbdev.distributed import Job, LocalExecutor\n'
            '[record] = LocalExecutor().map([Job("tf", "retina_nbdev.core:seed_everything", 3)], sys.argv[1])\n'  # seed_everything(3, 0) imports keras and TF
            'print("worker seeded", record["result"], file=sys.stderr)')
    clean = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    done = subprocess.run([sys.executable, '-c', code, str(tmp_path)], env=clean, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == 'driver\nworker seeded 3\n', done.stderr

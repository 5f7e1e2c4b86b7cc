"""Train the `small` BN-CNN one way and score it: model quality and the four phenomena against the retina.

    python tools/training_experiments.py NAME [--train ensemble] [--epochs 40] [--lr-patience 2]
        [--train-seconds 900] [--history 40] [--channels 8] [--l2 1e-3] [--noise-std 0.05] [--out DIR]
        [--moving-bars 0.2] [--flicker gaussian|flashes] [--image-seconds 1.0] [--white-noise-share 0.25]
        [--activity-l1 1e-4] [--batch-size 1000] [--learning-rate 0.01] [--max-lr-drops 3] [--targets true-rate]
    python tools/training_experiments.py NAME --rescore FOLDER   # score a finished experiment's model again
    python tools/training_experiments.py NAME --model results/train/cnn.keras --recording results/simulate/insilico/ensemble.h5
    python tools/training_experiments.py NAME --rescore FOLDER --reductions only   # reduce a finished experiment's model
    python tools/training_experiments.py NAME --rescore FOLDER --reductions filters   # only its filters, and the retina's

`--train` is one of `retina_nbdev.retina.STIMULI` ('naturalscene', 'saccades': natural scenes whose image changes every
0.3 s, 'ensemble', 'whitenoise'); the test movie is natural scenes except for 'whitenoise'. Every other option changes
one setting of the `small` preset (recording length, frames of history, conv channels) or of the model (L2 penalty,
training noise, an L1 penalty on the hidden layers' activity). Four options change the ensemble movie for this run only:
`--moving-bars` replaces that share of its 5 s blocks with a bar drifting and reversing, `--flicker` makes its
full-field blocks graded in contrast ('gaussian' flicker, or brief 'flashes' of random contrast on grey),
`--image-seconds` sets how long its natural blocks show one image (0.3 s: saccades; 1 s: like the test movie) and
`--white-noise-share` the expected share of its white-noise blocks (0.25). `--targets true-rate` trains on the retina's
noiseless rate instead of its recorded spikes (a bound on what the model could learn from the same movie; the test
movie's repeats stay recorded). `--retina-ablate gain_control` (any of `retina.ABLATIONS`) records, and measures the
phenomena and their true pathways on, a retina with that pathway silenced throughout; `--retina-param depression_use=0`
(any numeric field of `retina.RetinaParams`) on a retina with that parameter changed. Appends one row to
nbs/data/training_experiments.csv (the table the training notebook shows). One run takes 10-30 minutes on 2 cores. `--reductions also` (or `only`, for a trained model: no training row) reduces the
model as the study's reduce stage does, every cell where it reproduces a phenomenon, and appends the precision and
recall of the called types against the retina's true pathways to nbs/data/reduction_experiments.csv, and each reduced
cell (its kept channels, their types, the truth, the types the reduced CNN needs) to reduction_experiment_cells.csv
(1-3 minutes). With either, and alone with `--reductions filters`, each conv1 channel's effective temporal filter and
the retina's adapted release filters under the training movie (the templates a channel's filter can be compared
with) go to nbs/data/reduction_experiment_filters.csv.
"""
import argparse, csv, dataclasses, functools, json, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ['name', 'train', 'seed', 'epochs', 'lr_patience', 'train_minutes', 'history', 'channels', 'l2', 'noise_std',
           'activity_l1', 'batch_size', 'learning_rate', 'r_over_ceiling', 'r_true', 'latency', 'osr', 'reversal', 'anticipation', 'minutes']
PHENOMENA = ('latency', 'osr', 'reversal', 'anticipation')  # `retina_nbdev.phenomena.PHENOMENA`, without importing TensorFlow
MODEL_REDUCTION_COLUMNS = (['name', 'r_over_ceiling'] + [f'{name}_{measure}' for name in PHENOMENA for measure in ('retina_cells', 'cells', 'precision', 'recall')]
                           + ['extra_types', 'extra_types_needed', 'minutes'])  # one row per model (reduction_experiments.csv)
CELL_COLUMNS = ['name', 'phenomenon', 'cell', 'keep', 'types', 'truth', 'needed', 'precision', 'recall', 'extra', 'extra_needed']
FILTER_COLUMNS = ['name', 'source', 'filter']  # source: 'channel K' (conv1) or 'adapted TYPE' (the retina); filter: lags 1..history, space-separated


def quality_table(model, recording):
    "The model's per-cell scores on the recording's test movie (`metrics.evaluate`)."
    from retina_nbdev.train import predict_test
    from retina_nbdev.metrics import evaluate
    return evaluate(predict_test(model, recording), recording.test_repeats, recording.true_test_rates)


def retina_params(settings=(), # 'NAME=VALUE' pairs, NAME a numeric field of `retina.RetinaParams`
                 ):
    "The retina's parameters with `settings` changed (None: none changed, the default retina)."
    from retina_nbdev.retina import RetinaParams
    if not settings: return None
    defaults, changes = {f.name: f.default for f in dataclasses.fields(RetinaParams)}, {}
    for setting in settings:
        name, _, value = setting.partition('=')
        try: number = float(value) if isinstance(defaults.get(name), (int, float)) and not isinstance(defaults.get(name), bool) else None
        except ValueError: number = None
        if number is None: raise ValueError(f"--retina-param {setting!r}: need NAME=VALUE, NAME a numeric field of RetinaParams and VALUE a number")
        if isinstance(defaults[name], int) and not number.is_integer(): raise ValueError(f"--retina-param {setting!r}: {name} is a whole number")
        changes[name] = type(defaults[name])(number)
    return RetinaParams(**changes)


def score(model, recording, preset, row, ablate=(), params=None):
    "Fill `row` with the model's test quality and the phenomena it reproduces (against the retina with `ablate` silenced, `params` its parameters)."
    from retina_nbdev import phenomena as ph
    from retina_nbdev.retina import Retina
    table = quality_table(model, recording)
    retina, zscore = Retina(params, preset, seed=0), (float(recording.stimulus_mean), float(recording.stimulus_std))
    shown = ph.reproduction(ph.compare_systems(ph.run_suite(retina, ablate=ablate), ph.run_suite(model, cell_types=retina.cell_types, zscore=zscore)))
    row.update(r_over_ceiling=round(float((table.r / table.ceiling).median()), 3), r_true=round(float(table.r_true.median()), 3),
               **{r.phenomenon: f"{r['reproduced (cnn)']}/{r['cells (retina)']}" for _, r in shown.iterrows()})
    return row


def retina_ablations(retina, ablate=()):
    "The retina's phenomena with `ablate` silenced, and the phenomena stage's ablation table on top of that: (suite, table)."
    import pandas as pd
    from retina_nbdev import phenomena as ph
    from retina_nbdev.retina import ABLATIONS
    from retina_nbdev.pipeline import ablation_table
    suite = ph.run_suite(retina, ablate=ablate)
    silenced = lambda name: tuple(dict.fromkeys(tuple(ablate) + (name,)))  # silencing a silenced pathway again changes nothing
    return suite, pd.concat([ablation_table(suite, 'none')] + [ablation_table(ph.run_suite(retina, ablate=silenced(name)), name) for name in ABLATIONS])


def reduction_scores(model, recording, preset, folder: Path, row: dict,
                     ablate=(), # pathways silenced in the retina throughout: the truth is that retina's
                     params=None, # the retina's parameters (`retina_params`); None: the default retina
                    ):
    "Fill `row` with the precision and recall of the model's reductions, scored as the study's reduce stage scores them; return the cells' table."
    import pandas as pd
    from retina_nbdev import phenomena as ph
    from retina_nbdev.retina import Retina
    from retina_nbdev.pipeline import cells_to_reduce
    from retina_nbdev.phenomenon_reduction import attribute_phenomenon, reduce_attributed, score_reduction
    quality = quality_table(model, recording)
    row['r_over_ceiling'] = round(float((quality.r / quality.ceiling).median()), 3)
    retina, zscore = Retina(params, preset, seed=0), (float(recording.stimulus_mean), float(recording.stimulus_std))
    retina_suite, ablations = retina_ablations(retina, ablate)
    folder.mkdir(parents=True, exist_ok=True)
    comparison = ph.compare_systems(retina_suite, ph.run_suite(model, cell_types=retina.cell_types, zscore=zscore))
    comparison.to_csv(folder/'comparison.csv', index=False)
    shown = ph.reproduction(comparison).set_index('phenomenon')['cells (retina)']
    cells = []
    for phenomenon, numbers in cells_to_reduce(folder).items():
        for cell in numbers:
            reduced = reduce_attributed(model, attribute_phenomenon(model, phenomenon, cell, zscore, steps=preset.ig_steps), zscore)
            cells.append(score_reduction(model, reduced, zscore, ablations))
    table = pd.DataFrame(cells, columns=CELL_COLUMNS[1:])
    table.to_csv(folder/'reductions.csv', index=False)
    for name in PHENOMENA:
        group = table[table.phenomenon == name]
        row.update({f'{name}_retina_cells': int(shown.get(name, 0)), f'{name}_cells': len(group), f'{name}_precision': round(float(group.precision.mean()), 3) if group.precision.notna().any() else None,
                    f'{name}_recall': round(float(group.recall.mean()), 3) if group.recall.notna().any() else None})
    scored = table.dropna(subset=['extra'])
    row.update(extra_types=int(scored.extra.sum()), extra_types_needed=round(float(scored.extra_needed.sum() / scored.extra.sum()), 3) if scored.extra.sum() else None)
    return table


def channel_filters(model, recording, preset, params=None, # the retina's parameters (`retina_params`); None: the default retina
                    frames: int = 12000, # frames of the training movie the adapted filters are fitted on (2 minutes)
                   ):
    "Rows of FILTER_COLUMNS (no name): each conv1 channel's effective filter (`effective_filters`, without batch norm, as `channel_types` types it), then each bipolar type's adapted release filter under the training movie (`linear_filters`; every type releases: an ablated bipolar type's filter is the one it would have)."
    import numpy as np
    from retina_nbdev.reduction import effective_filters, linear_filters
    from retina_nbdev.retina import BIPOLAR_TYPES, Retina
    movie = recording.stimulus('train')[:frames]
    release = Retina(params, preset, seed=0).bipolar_release(movie)[:, :, ::3, ::3]  # every third pixel: sites enough for a 40-lag fit
    sites = movie[:, ::3, ::3].reshape(len(movie), -1)
    adapted = linear_filters(sites, release.transpose(1, 0, 2, 3).reshape(len(BIPOLAR_TYPES), len(movie), -1), recording.history)
    channels = effective_filters(model, batchnorm=False)
    sources = [f'channel {c}' for c in range(len(channels))] + [f'adapted {name}' for name in BIPOLAR_TYPES]
    filters = np.concatenate([channels, adapted])[:, 1:]  # lag 0 is 0 in both: left out
    return [dict(source=source, filter=' '.join(f'{value:.4g}' for value in f)) for source, f in zip(sources, filters)]


def append_row(target: Path, columns: list, row: dict):
    "Append `row` to the CSV `target` (with a header if it is new)."
    new = not target.exists()
    with open(target, 'a', newline='') as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        if new: writer.writeheader()
        writer.writerow(row)


def moving_bars(num_frames: int, pixels: int, seed: int, block: int = 500):
    "Blocks of one bar (random width, contrast and speed) drifting and reversing at random times; half the blocks turned 90 degrees."
    import numpy as np
    from retina_nbdev.stimuli import bar_frames
    rng, movie = np.random.default_rng([seed, 13]), np.zeros((num_frames, pixels, pixels), np.float32)
    for start in range(0, num_frames, block):
        n = min(block, num_frames - start)
        width, intensity = rng.uniform(1, 3), rng.choice([-1, 1]) * rng.uniform(0.5, 2)
        low, high = -width, pixels - 1 + width
        x, speed, positions = rng.uniform(low, high), rng.choice([-1, 1]) * rng.uniform(0.05, 0.3), np.empty(n)
        for t in range(n):
            if rng.random() < 1 / 60: speed = -speed  # a reversal every 0.6 s on average
            if rng.random() < 1 / 150: speed = np.sign(speed) * rng.uniform(0.05, 0.3)  # a new speed every 1.5 s
            x += speed
            if not low <= x <= high: speed, x = -speed, np.clip(x, low, high)
            positions[t] = x
        frames = bar_frames(positions, pixels, width, intensity)
        movie[start:start + n] = frames if rng.random() < 0.5 else frames.transpose(0, 2, 1)
    return movie


def graded_full_field(num_frames: int, kind: str, seed: int):
    "(num_frames,) full-field contrast: 'gaussian' flicker held 3 frames, or 'flashes' of 2-10 frames and random contrast 30-60 frames apart."
    import numpy as np
    rng = np.random.default_rng([seed, 21])
    if kind == 'gaussian': return np.repeat(rng.normal(0, 1, -(-num_frames // 3)), 3)[:num_frames].astype(np.float32)
    contrast, t = np.zeros(num_frames, np.float32), 0
    while t < num_frames:
        duration, gap = rng.integers(2, 11), rng.integers(30, 61)
        contrast[t:t + duration] = rng.choice([-1, 1]) * rng.uniform(0.2, 2.5); t += duration + gap
    return contrast


def ensemble_variant(moving_bars_share: float = 0.0, flicker: str = 'binary'):
    "`retina.stimulus_ensemble` with moving-bar blocks and graded full-field blocks (its spatially uniform ones) swapped in."
    import numpy as np
    if not 0 <= moving_bars_share <= 1: raise ValueError(f"the moving-bar share must be in [0, 1], got {moving_bars_share}")
    if flicker not in ('binary', 'gaussian', 'flashes'): raise ValueError(f"flicker is 'binary', 'gaussian' or 'flashes', got {flicker!r}")
    from retina_nbdev import retina
    original = retina.stimulus_ensemble
    def variant(num_frames, pixels, seed=0, **options):
        movie = original(num_frames, pixels, seed, **options)
        block = max(1, int(round(options.get('block_seconds', 5.0) * retina.FRAME_RATE)))  # the ensemble's blocks
        if flicker != 'binary':
            contrast = graded_full_field(num_frames, flicker, seed + 9)
            for start in range(0, num_frames, block):
                if np.ptp(movie[start:start + block], axis=(1, 2)).max() == 0: movie[start:start + block] = contrast[start:start + block, None, None]
        if moving_bars_share:
            bars, draws = moving_bars(num_frames, pixels, seed + 13, block), np.random.default_rng([seed, 17])
            for start in range(0, num_frames, block):
                if draws.random() < moving_bars_share: movie[start:start + block] = bars[start:start + block]
        return movie
    return variant


def activity_l1_step(l1: float):
    "`train.make_train_step` with `l1` times each hidden ReLU layer's summed activity (mean over windows) added to the loss."
    import keras, tensorflow as tf
    from retina_nbdev import chunked
    def make_train_step(model):
        names, conv1 = [layer.name for layer in model.layers], model.get_layer('conv1')
        inputs = x = keras.Input(conv1.output.shape[1:])
        hidden = []
        for layer in model.layers[names.index('conv1') + 1:]:
            x = layer(x)
            if layer.name.endswith('_relu'): hidden.append(x)
        tail, poisson = keras.Model(inputs, [x] + hidden), keras.losses.Poisson()
        @tf.function(reduce_retracing=True)
        def step(chunks, targets):
            with tf.GradientTape() as tape:
                rates, *activity = tail(chunked.fft_conv1(chunks, conv1.kernel, conv1.bias), training=True)
                penalty = sum(tf.reduce_mean(tf.reduce_sum(tf.abs(a), axis=[1, 2, 3])) for a in activity)
                total = poisson(targets, rates) + chunked._penalty(model) + l1 * penalty
            model.optimizer.apply_gradients(zip(tape.gradient(total, model.trainable_variables), model.trainable_variables))
            return total
        return step
    return make_train_step


def noiseless_copy(recording_file: Path, target: Path) -> Path:
    "A copy of the recording whose training responses are the retina's true rate (`ground_truth/true_rate_train`)."
    import shutil, h5py
    if not target.exists():
        with h5py.File(recording_file, 'r') as f:
            if 'ground_truth/true_rate_train' not in f: raise ValueError(f"{recording_file}: no 'ground_truth/true_rate_train' (only an in-silico recording has a true rate)")
        partial = target.with_suffix('.partial.h5')
        shutil.copyfile(recording_file, partial)
        with h5py.File(partial, 'r+') as f: f['train/response/firing_rate_10ms'][...] = f['ground_truth/true_rate_train'][...]
        partial.rename(target)
    return target


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('name'); parser.add_argument('--train', default='ensemble')
    parser.add_argument('--epochs', type=int, default=40); parser.add_argument('--lr-patience', type=int, default=None, help="stalled epochs before the learning rate drops (the preset's: 2; the table's earlier rows: 4)")
    parser.add_argument('--train-seconds', type=float, default=None); parser.add_argument('--history', type=int, default=None)
    parser.add_argument('--channels', type=int, default=None); parser.add_argument('--l2', type=float, default=None)
    parser.add_argument('--noise-std', type=float, default=0.05)
    parser.add_argument('--moving-bars', type=float, default=0.0, help="share of the ensemble's blocks replaced by a moving, reversing bar")
    parser.add_argument('--flicker', choices=('binary', 'gaussian', 'flashes'), default='binary', help="the ensemble's full-field blocks")
    parser.add_argument('--image-seconds', type=float, default=None, help="the ensemble's natural blocks: a new image this often (0.3 s)")
    parser.add_argument('--white-noise-share', type=float, default=None, help="the ensemble's expected share of white-noise blocks (0.25)")
    parser.add_argument('--activity-l1', type=float, default=0.0, help="L1 penalty on the hidden layers' activity")
    parser.add_argument('--batch-size', type=int, default=None, help="windows per minibatch (the preset's: 1000)")
    parser.add_argument('--learning-rate', type=float, default=None, help="Adam's initial learning rate (the preset's: 0.01)")
    parser.add_argument('--max-lr-drops', type=int, default=None, help="drops of the learning rate before a plateau ends training (the study's: 3; the table's rows: no limit)")
    parser.add_argument('--targets', choices=('recorded', 'true-rate'), default='recorded', help="train on the recorded spikes or on the retina's noiseless rate")
    parser.add_argument('--seed', type=int, default=0, help="the model's seed (initial weights, minibatches, training noise); the recording's is 0")
    parser.add_argument('--rescore', type=Path, default=None, help='a finished experiment folder (rec.h5, run/) to score again')
    parser.add_argument('--model', type=Path, default=None, help="a trained model to score (with --recording: the demo's CNN)")
    parser.add_argument('--recording', type=Path, default=None, help='the recording --model was trained on')
    parser.add_argument('--reductions', choices=('no', 'also', 'only', 'filters'), default='no',
                        help="also reduce the model and score its reductions against the retina ('only': a trained model, no training row; 'filters': its filters and the retina's alone)")
    parser.add_argument('--retina-ablate', nargs='+', default=[], metavar='PATHWAY',
                        help="pathways of the retina silenced for the recording and the phenomena (`retina.ABLATIONS`: e.g. gain_control)")
    parser.add_argument('--retina-param', nargs='+', default=[], metavar='NAME=VALUE',
                        help="parameters of the retina changed for the recording and the phenomena (`retina.RetinaParams`: e.g. depression_use=0)")
    parser.add_argument('--out', type=Path, default=Path('experiments'))
    args = parser.parse_args()
    if args.reductions in ('only', 'filters') and not (args.model or (args.rescore and (args.rescore/'run'/'state.json').exists())):
        parser.error(f'--reductions {args.reductions} needs a trained model: --model FILE, or --rescore FOLDER of a finished run (FOLDER/run/state.json)')
    from retina_nbdev.core import configure_threads, get_preset, seed_everything
    configure_threads()
    from retina_nbdev.retina import simulate_experiment
    from retina_nbdev.data import load_recording
    from retina_nbdev.models import bn_cnn
    from retina_nbdev.train import fit, TrainingConfig
    from retina_nbdev import retina, train
    ablate = retina.check_ablate(args.retina_ablate)
    try: params = retina_params(args.retina_param)
    except ValueError as error: parser.error(str(error))
    if args.image_seconds is not None or args.white_noise_share is not None:
        if args.train != 'ensemble': parser.error('--image-seconds and --white-noise-share change the ensemble: use them with --train ensemble')
        options = {key: value for key, value in dict(image_seconds=args.image_seconds, white_noise_share=args.white_noise_share).items() if value is not None}
        retina.stimulus_ensemble = functools.partial(retina.stimulus_ensemble, **options)
    if args.moving_bars or args.flicker != 'binary':
        if args.train != 'ensemble': parser.error('--moving-bars and --flicker change the ensemble: use them with --train ensemble')
        retina.stimulus_ensemble = ensemble_variant(args.moving_bars, args.flicker)
    if args.activity_l1: train.make_train_step = activity_l1_step(args.activity_l1)
    small, start = get_preset('small'), time.perf_counter()
    changes = {key: value for key, value in dict(train_seconds=args.train_seconds, history=args.history,
               conv1_channels=args.channels, conv2_channels=args.channels, l2=args.l2,
               batch_size=args.batch_size, learning_rate=args.learning_rate, lr_patience=args.lr_patience).items() if value is not None}
    preset = dataclasses.replace(small, **changes)
    out = args.rescore or args.out/args.name
    recording_file = args.recording or (out/'rec.h5' if (out/'rec.h5').exists() else simulate_experiment(preset, args.train, seed=0, out=out, ablate=ablate, params=params))
    if args.targets == 'true-rate': recording_file = noiseless_copy(recording_file, out/'noiseless.h5')
    recording = load_recording(recording_file, history=preset.history, nskip=preset.nskip)
    if args.model:
        from retina_nbdev.models import load_model
        model, epochs = load_model(args.model), args.epochs
    else:
        seed_everything(args.seed)
        model = bn_cnn(preset, num_cells=recording.num_cells, noise_std=args.noise_std)
        training = TrainingConfig(epochs=args.epochs, seed=args.seed, max_lr_drops=args.max_lr_drops)  # the schedule's patience: the preset's
        epochs = fit(model, recording, out/'run', training, progress=False, preset=preset).epoch
    movie = args.train + (f" + {args.moving_bars:.0%} moving-bar blocks" if args.moving_bars else '') + (f", a new image every {args.image_seconds:g} s" if args.image_seconds is not None else '') + (f", {args.white_noise_share:.0%} white-noise blocks" if args.white_noise_share is not None else '') + (f", {args.flicker} full-field blocks" if args.flicker != 'binary' else '') + (', noiseless targets' if args.targets == 'true-rate' else '') + (f", retina without {' and '.join(ablate)}" if ablate else '') + ''.join(f", retina with {setting}" for setting in args.retina_param)
    row = dict(name=args.name, train=movie, seed=args.seed, epochs=epochs, lr_patience=preset.lr_patience,
               train_minutes=round(preset.train_seconds / 60), history=preset.history, channels=preset.conv1_channels,
               l2=preset.l2, noise_std=args.noise_std, activity_l1=args.activity_l1, batch_size=preset.batch_size,
               learning_rate=preset.learning_rate)
    if args.reductions in ('no', 'also'):
        row = score(model, recording, preset, row, ablate, params)
        row['minutes'] = round((time.perf_counter() - start) / 60, 1)
        print(json.dumps(row))
        append_row(ROOT/'nbs'/'data'/'training_experiments.csv', COLUMNS, row)
    if args.reductions in ('also', 'only'):
        start = time.perf_counter()
        reduced = dict(name=args.name)
        cells = reduction_scores(model, recording, preset, out/'reductions', reduced, ablate, params)
        reduced['minutes'] = round((time.perf_counter() - start) / 60, 1)
        print(json.dumps(reduced))
        for cell in cells.to_dict('records'): append_row(ROOT/'nbs'/'data'/'reduction_experiment_cells.csv', CELL_COLUMNS, dict(cell, name=args.name))
        append_row(ROOT/'nbs'/'data'/'reduction_experiments.csv', MODEL_REDUCTION_COLUMNS, reduced)
    if args.reductions != 'no':
        for row in channel_filters(model, recording, preset, params): append_row(ROOT/'nbs'/'data'/'reduction_experiment_filters.csv', FILTER_COLUMNS, dict(row, name=args.name))


if __name__ == '__main__': main()

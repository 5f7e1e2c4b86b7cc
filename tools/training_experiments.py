"""Train the `small` BN-CNN one way and score it: model quality and the four phenomena against the retina.

    python tools/training_experiments.py NAME [--train ensemble] [--epochs 40] [--lr-patience 4]
        [--train-seconds 900] [--history 40] [--channels 8] [--l2 1e-3] [--noise-std 0.05] [--out DIR]
    python tools/training_experiments.py NAME --rescore FOLDER   # score a finished experiment's model again
    python tools/training_experiments.py NAME --model results/train/cnn.keras --recording results/simulate/insilico/ensemble.h5

`--train` is one of `retina_nbdev.retina.STIMULI` ('naturalscene', 'saccades': natural scenes whose image changes every
0.3 s, 'ensemble', 'whitenoise'); the test movie is natural scenes except for 'whitenoise'. Every other option changes
one setting of the `small` preset (recording length, frames of history, conv channels) or of the model (L2 penalty,
training noise). Appends one row to nbs/data/training_experiments.csv (the table the training notebook shows).
One run takes 10-30 minutes on 2 cores.
"""
import argparse, csv, dataclasses, json, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ['name', 'train', 'seed', 'epochs', 'lr_patience', 'train_minutes', 'history', 'channels', 'l2', 'noise_std',
           'r_over_ceiling', 'r_true', 'latency', 'osr', 'reversal', 'anticipation', 'minutes']


def score(model, recording, preset, row):
    "Fill `row` with the model's test quality and the phenomena it reproduces."
    from retina_nbdev import phenomena as ph
    from retina_nbdev.retina import Retina
    from retina_nbdev.train import predict_test
    from retina_nbdev.metrics import evaluate
    table = evaluate(predict_test(model, recording), recording.test_repeats, recording.true_test_rates)
    retina, zscore = Retina(preset=preset, seed=0), (float(recording.stimulus_mean), float(recording.stimulus_std))
    shown = ph.reproduction(ph.compare_systems(ph.run_suite(retina), ph.run_suite(model, cell_types=retina.cell_types, zscore=zscore)))
    row.update(r_over_ceiling=round(float((table.r / table.ceiling).median()), 3), r_true=round(float(table.r_true.median()), 3),
               **{r.phenomenon: f"{r['reproduced (cnn)']}/{r['cells (retina)']}" for _, r in shown.iterrows()})
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('name'); parser.add_argument('--train', default='ensemble')
    parser.add_argument('--epochs', type=int, default=40); parser.add_argument('--lr-patience', type=int, default=4)
    parser.add_argument('--train-seconds', type=float, default=None); parser.add_argument('--history', type=int, default=None)
    parser.add_argument('--channels', type=int, default=None); parser.add_argument('--l2', type=float, default=None)
    parser.add_argument('--noise-std', type=float, default=0.05)
    parser.add_argument('--seed', type=int, default=0, help="the model's seed (initial weights, minibatches, training noise); the recording's is 0")
    parser.add_argument('--rescore', type=Path, default=None, help='a finished experiment folder (rec.h5, run/) to score again')
    parser.add_argument('--model', type=Path, default=None, help="a trained model to score (with --recording: the demo's CNN)")
    parser.add_argument('--recording', type=Path, default=None, help='the recording --model was trained on')
    parser.add_argument('--out', type=Path, default=Path('experiments'))
    args = parser.parse_args()
    from retina_nbdev.core import configure_threads, get_preset, seed_everything
    configure_threads()
    from retina_nbdev.retina import simulate_experiment
    from retina_nbdev.data import load_recording
    from retina_nbdev.models import bn_cnn
    from retina_nbdev.train import fit, TrainingConfig
    small, start = get_preset('small'), time.perf_counter()
    changes = {key: value for key, value in dict(train_seconds=args.train_seconds, history=args.history,
               conv1_channels=args.channels, conv2_channels=args.channels, l2=args.l2).items() if value is not None}
    preset = dataclasses.replace(small, **changes)
    out = args.rescore or args.out/args.name
    recording_file = args.recording or (out/'rec.h5' if (out/'rec.h5').exists() else simulate_experiment(preset, args.train, seed=0, out=out))
    recording = load_recording(recording_file, history=preset.history, nskip=preset.nskip)
    if args.model:
        from retina_nbdev.models import load_model
        model, epochs = load_model(args.model), args.epochs
    else:
        seed_everything(args.seed)
        model = bn_cnn(preset, num_cells=recording.num_cells, noise_std=args.noise_std)
        training = TrainingConfig(epochs=args.epochs, patience_lr=args.lr_patience, seed=args.seed)
        epochs = fit(model, recording, out/'run', training, progress=False, preset=preset).epoch
    row = dict(name=args.name, train=args.train, seed=args.seed, epochs=epochs, lr_patience=args.lr_patience,
               train_minutes=round(preset.train_seconds / 60), history=preset.history, channels=preset.conv1_channels,
               l2=preset.l2, noise_std=args.noise_std)
    row = score(model, recording, preset, row)
    row['minutes'] = round((time.perf_counter() - start) / 60, 1)
    print(json.dumps(row))
    target = ROOT/'nbs'/'data'/'training_experiments.csv'
    new = not target.exists()
    with open(target, 'a', newline='') as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        if new: writer.writeheader()
        writer.writerow(row)


if __name__ == '__main__': main()

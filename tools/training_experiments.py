"""Train the `small` BN-CNN on one stimulus ensemble and score it: model quality and the four phenomena against the retina.

    python tools/training_experiments.py NAME --train ensemble [--epochs 40] [--lr-patience 4] [--out DIR]

`--train` is one of `retina_nbdev.retina.STIMULI` ('naturalscene', 'saccades': natural scenes whose image changes every
0.3 s, 'ensemble', 'whitenoise'); the test movie is natural scenes except for 'whitenoise'. Appends one row
to nbs/data/training_experiments.csv (the table the training notebook shows). One run takes 15-30 minutes on 2 cores.
"""
import argparse, csv, json, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('name'); parser.add_argument('--train', default='ensemble')
    parser.add_argument('--epochs', type=int, default=40); parser.add_argument('--lr-patience', type=int, default=4)
    parser.add_argument('--out', type=Path, default=Path('experiments'))
    args = parser.parse_args()
    from retina_nbdev.core import configure_threads, get_preset, seed_everything
    configure_threads()
    from retina_nbdev import phenomena as ph
    from retina_nbdev.retina import Retina, simulate_experiment
    from retina_nbdev.data import load_recording
    from retina_nbdev.models import bn_cnn
    from retina_nbdev.train import fit, predict_test
    from retina_nbdev.metrics import evaluate
    preset, out, start = get_preset('small'), args.out/args.name, time.perf_counter()
    retina = Retina(preset=preset, seed=0)
    recording = load_recording(simulate_experiment(preset, args.train, seed=0, out=out), history=preset.history, nskip=preset.nskip)
    seed_everything(0)
    model = bn_cnn(preset, num_cells=recording.num_cells)
    state = fit(model, recording, out/'run', epochs=args.epochs, patience_lr=args.lr_patience, seed=0, progress=False, preset=preset)
    table = evaluate(predict_test(model, recording), recording.test_repeats, recording.true_test_rates)
    zscore = (float(recording.stimulus_mean), float(recording.stimulus_std))
    shown = ph.reproduction(ph.compare_systems(ph.run_suite(retina), ph.run_suite(model, cell_types=retina.cell_types, zscore=zscore)))
    row = dict(name=args.name, train=args.train, epochs=state.epoch, lr_patience=args.lr_patience,
               r_over_ceiling=round(float((table.r / table.ceiling).median()), 3), r_true=round(float(table.r_true.median()), 3),
               **{r.phenomenon: f"{r['reproduced (cnn)']}/{r['cells (retina)']}" for _, r in shown.iterrows()},
               minutes=round((time.perf_counter() - start) / 60, 1))
    print(json.dumps(row))
    target = ROOT/'nbs'/'data'/'training_experiments.csv'
    new = not target.exists()
    with open(target, 'a', newline='') as file:
        writer = csv.DictWriter(file, fieldnames=list(row))
        if new: writer.writeheader()
        writer.writerow(row)


if __name__ == '__main__': main()

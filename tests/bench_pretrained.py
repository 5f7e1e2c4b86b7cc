"""The shipped models: how long each takes to load (Keras safe mode, offline) and to score on a freshly recorded test
movie. The test (`04c_pretrained`) asserts that they load in safe mode and meet their recorded scores; the times
differ from machine to machine, so they are printed here, not asserted.

    python tests/bench_pretrained.py
"""
import time


def main():
    from retina_nbdev.models import pretrained, pretrained_names, model_card
    from retina_nbdev.zoo import score_pretrained
    print(f"{'model':<10} {'load (s)':>9} {'score (s)':>10} {'median r':>9} {'card r':>7}")
    for name in pretrained_names():
        start = time.perf_counter(); pretrained(name); loaded = time.perf_counter() - start
        start = time.perf_counter(); scores = score_pretrained(name); scored = time.perf_counter() - start
        print(f"{name:<10} {loaded:>9.2f} {scored:>10.1f} {scores.r.median():>9.4f} {model_card(name)['test']['r']:>7.4f}")


if __name__ == '__main__':
    main()

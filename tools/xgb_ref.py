#!/usr/bin/python3
"""Reference for apmae's gradient-boosted trees (src/classify/gbt.c).

Trains XGBoost through its Python package on a small synthetic data set of
cluster ids, with the parameters apmae maps onto the C API (hist trees,
categorical features, binary logistic loss, logloss early stopping on an eval
set), and writes the data, the split, the round early stopping keeps, and the
test rows' margins and TreeSHAP contributions to a JSON fixture that
tests/test_classify.c compares against the C path.

Usage: /usr/bin/python3 tools/xgb_ref.py tests/fixtures/classify/xgb_ref.json
"""
import json
import sys

import numpy as np
import xgboost as xgb

N, F = 240, 6
PARAMS = {"booster": "gbtree", "objective": "binary:logistic", "tree_method": "hist", "max_depth": 6,
          "eta": 0.1, "eval_metric": "logloss", "nthread": 1, "seed": 42}


def main(out_path):
    rng = np.random.default_rng(7)
    # cluster ids -1 (noise) .. 4, correctness driven by two features and noise
    x = rng.integers(-1, 5, size=(N, F)).astype(np.int32)
    signal = np.isin(x[:, 1], [0, 2]) ^ (x[:, 4] == 3)
    y = (signal ^ (rng.random(N) < 0.2)).astype(np.int32)
    order = rng.permutation(N)
    test, evals, train = order[:24], order[24:46], order[46:]

    def dmatrix(rows, label=True):
        # the documented mapping: cluster c -> category c + 1, noise -> 0
        return xgb.DMatrix((x[rows] + 1).astype(np.float32), label=y[rows] if label else None,
                           feature_types=["c"] * F, enable_categorical=True, nthread=1)

    bst = xgb.train(PARAMS, dmatrix(train), num_boost_round=1000, evals=[(dmatrix(evals), "eval")],
                    early_stopping_rounds=25, verbose_eval=False)
    best = bst.best_iteration
    dtest = dmatrix(test, label=False)
    margin = bst.predict(dtest, output_margin=True, iteration_range=(0, best + 1))
    contribs = bst.predict(dtest, pred_contribs=True, iteration_range=(0, best + 1))
    assert np.abs(contribs.sum(1) - margin).max() < 1e-4
    fixture = {
        "generator": "tools/xgb_ref.py, xgboost " + xgb.__version__,
        "params": PARAMS, "max_rounds": 1000, "early_stopping": 25,
        "n": N, "features": F, "x": x.ravel().tolist(), "y": y.tolist(),
        "train": train.tolist(), "eval": evals.tolist(), "test": test.tolist(),
        "best_iteration": int(best), "rounds": int(bst.num_boosted_rounds()),
        "margin": [float(v) for v in margin], "contribs": [float(v) for v in contribs.ravel()],
    }
    with open(out_path, "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    print(f"best iteration {best} of {bst.num_boosted_rounds()} rounds; wrote {out_path}")


if __name__ == "__main__":
    main(sys.argv[1])

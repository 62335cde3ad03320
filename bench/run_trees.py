#!/usr/bin/env python3
"""tessera's boosted trees against XGBoost 1.7's `hist` method (Debian's python3-xgboost) on the
same rows, the same parameters and the same threads: test scores and seconds to fit (median of
--runs, each in a fresh process, the peer's and tessera's runs alternating).

Both: max_depth 6, learning rate 0.3, reg_lambda 1, min_child_weight 1, depthwise growth;
XGBoost max_bin 256, tessera max_bins 255 (its bin 0 holds missing values). XGBoost's time is
DMatrix construction plus xgb.train (its quantile sketch runs in train); tessera's is its own
report of the fit (binning included, reading the data apart).

Random forest: XGBoost's (XGBRFClassifier's defaults: one round of num_parallel_tree trees per
class, learning rate 1, subsample 0.8, colsample_bynode 0.8, reg_lambda 1e-5, max_depth 6) against
tessera's random_forest, whose defaults are the same.

Data: Fashion-MNIST (60000 x 784 pixels, 10 classes, softmax), and tables from
tools/make_table_data (seed 1, --rows x 20 features): binary classification and regression.

Threads: one process with 2 threads for both (XGBoost nthread=2), and tessera's 2 processes x 1
thread. XGBoost's health: its fit with 1 thread is timed too; a 2-thread fit that is not faster
means its threads do not run, and the ratios are not to be believed.

Usage: bench/run_trees.py [--runs 3] [--build build/release] [--rows 200000] [--rounds 100]
                          [--fashion-rounds 20] [--forest-trees 20]
                          [--cases fashion,binary,regression,forest]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_env  # noqa: E402
from run_ml import FASHION, PRELUDE, run_example, run_peer  # noqa: E402

XGBOOST_FIT = PRELUDE + r'''
import xgboost as xgb
if spec["data"] == "fashion-mnist":
    x, y, xt, yt = fashion(np.float32)
else:
    train = np.loadtxt(spec["train"], delimiter=",", skiprows=1, dtype=np.float32)
    test = np.loadtxt(spec["test"], delimiter=",", skiprows=1, dtype=np.float32)
    x, y, xt, yt = train[:, :-1], train[:, -1], test[:, :-1], test[:, -1]
objective = {"multiclass": "multi:softprob", "binary": "binary:logistic",
             "regression": "reg:squarederror"}[spec["objective"]]
params = {"tree_method": "hist", "objective": objective, "max_depth": 6, "eta": 0.3,
          "max_bin": 256, "nthread": spec["threads"]}
if spec.get("forest"):  # XGBRFClassifier's defaults
    params.update({"eta": 1.0, "num_parallel_tree": spec["forest"], "subsample": 0.8,
                   "colsample_bynode": 0.8, "reg_lambda": 1e-5})
if spec["objective"] == "multiclass":
    params["num_class"] = int(y.max()) + 1
start = time.perf_counter()
model = xgb.train(params, xgb.DMatrix(x, label=y, nthread=spec["threads"]), spec["rounds"])
seconds = time.perf_counter() - start
p = model.predict(xgb.DMatrix(xt, nthread=spec["threads"]))
out = {"seconds": seconds}
if spec["objective"] == "regression":
    out["test_rmse"] = float(np.sqrt(np.mean((p - yt) ** 2)))
elif spec["objective"] == "binary":
    from sklearn.metrics import roc_auc_score
    out["test_accuracy"] = float(np.mean((p > 0.5) == (yt == 1)))
    out["test_auc"] = float(roc_auc_score(yt, p))
else:
    from sklearn.metrics import log_loss
    out["test_accuracy"] = float(np.mean(p.argmax(axis=1) == yt))
    out["test_log_loss"] = float(log_loss(yt, p))
print(json.dumps(out))
'''

SCORES = {"multiclass": ("test_accuracy", "test_log_loss"), "binary": ("test_accuracy", "test_auc"),
          "regression": ("test_rmse",)}


def run_xgboost(spec, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    return run_peer(XGBOOST_FIT, dict(spec, threads=threads), env)


def run_tessera(build, spec, nproc, run_dir):
    sets = [f'model.objective="{spec["objective"]}"']
    if spec.get("forest"):
        sets.append(f"model.trees={spec['forest']}")
    else:
        sets.append(f"model.rounds={spec['rounds']}")
    if spec["data"] != "fashion-mnist":
        sets += [f'data.train="csv:{spec["train"]}"', f'data.test="csv:{spec["test"]}"',
                 'data.label_column="y"']
    last = run_example(build, "random_forest" if spec.get("forest") else "boosted_trees", sets, nproc,
                       run_dir)
    return dict(last, seconds=last["fit_s"])


def median_of(results):
    out = dict(results[len(results) // 2])
    out["seconds"] = statistics.median(r["seconds"] for r in results)
    return out


def show(value, name):
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if name == "test_accuracy" else f"{value:.5f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=bench_env.HelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "build/release"))
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=100, help="rounds on the tables")
    ap.add_argument("--fashion-rounds", type=int, default=20, help="rounds on Fashion-MNIST")
    ap.add_argument("--forest-trees", type=int, default=20, help="trees (per class) of the forest")
    ap.add_argument("--cases", default="fashion,binary,regression,forest",
                    help="fashion, binary, regression: boosting; forest: a random forest on Fashion-MNIST")
    a = ap.parse_args()
    print(bench_env.header("XGBoost 1.7 hist"))
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        if "fashion" in a.cases:
            cases.append(("Fashion-MNIST, 10 classes", {"data": "fashion-mnist", "dir": FASHION,
                                                        "objective": "multiclass",
                                                        "rounds": a.fashion_rounds}))
        if "forest" in a.cases:
            cases.append((f"Fashion-MNIST, 10 classes, forest of {a.forest_trees}",
                          {"data": "fashion-mnist", "dir": FASHION, "objective": "multiclass",
                           "rounds": 1, "forest": a.forest_trees}))
        for task, objective in (("classification", "binary"), ("regression", "regression")):
            if objective not in a.cases:
                continue
            out = os.path.join(tmp, task)
            subprocess.run([os.path.join(a.build, "tools/make_table_data"), "--out", out, "--task", task,
                            "--train", str(a.rows), "--test", "20000", "--features", "20", "--seed", "1"],
                           check=True, capture_output=True)
            cases.append((f"table {a.rows} x 20, {objective}",
                           {"data": "csv", "train": out + "/train.csv", "test": out + "/test.csv",
                            "objective": objective, "rounds": a.rounds}))
        print(f"median of {a.runs} runs; max_depth 6, learning rate 0.3")
        print("| data | rounds | who | processes x threads | scores | fit s | speed vs XGBoost |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, spec in cases:
            names = SCORES[spec["objective"]]
            one_thread = run_xgboost(spec, 1)
            # The runs alternate, so that a machine that slows down slows all of them.
            runs = {"peer": [], 1: [], 2: []}
            for _ in range(a.runs):
                runs["peer"].append(run_xgboost(spec, 2))
                for nproc in (1, 2):
                    runs[nproc].append(run_tessera(a.build, spec, nproc, os.path.join(tmp, f"run{nproc}")))
            peer = median_of(runs["peer"])
            rows = [("XGBoost", "1 x 1", one_thread), ("XGBoost", "1 x 2", peer),
                    ("tessera", "1 x 2", median_of(runs[1])), ("tessera", "2 x 1", median_of(runs[2]))]
            for who, threads, r in rows:
                ratio = f"{peer['seconds'] / r['seconds']:.2f}x" if who == "tessera" else ""
                scores = ", ".join(f"{n[5:]} {show(r.get(n), n)}" for n in names)
                print(f"| {name} | {spec['rounds']} | {who} | {threads} | {scores} | {r['seconds']:.2f} | {ratio} |",
                      flush=True)
            if peer["seconds"] >= one_thread["seconds"]:
                print(f"WARNING: XGBoost with 2 threads ({peer['seconds']:.2f} s) is no faster than with 1 "
                      f"({one_thread['seconds']:.2f} s): the peer is unhealthy, do not believe the ratios")
    print(bench_env.footer())


if __name__ == "__main__":
    main()

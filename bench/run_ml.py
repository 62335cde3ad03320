#!/usr/bin/env python3
"""tessera's estimators against scikit-learn 1.2 on the same rows, same objective, same
tolerance, same threads: the objective each reaches, test accuracy, and seconds to fit (median of
--runs, each in a fresh process, scikit-learn's, tessera's 1 x 2 and its 2 x 1 fits taking turns;
tessera's time is its own report of the fit, data loading apart,
as scikit-learn's is the fit call's).

k-means: KMeans(n_clusters=10, n_init=1, tol=1e-4, max_iter=300, algorithm="lloyd") on
Fashion-MNIST's pixels as float32, seeds 0 .. --runs - 1 for both (scikit-learn seeds k-means++,
tessera k-means||; the two start from other centers, so the table shows the medians over the
seeds of the inertia reached, the iterations and the fit's seconds, and the seconds per
iteration).

The objective is the mean loss plus l2 / 2 |W|^2 for both: scikit-learn 1.2's LogisticRegression
minimises exactly this with C = 1 / (l2 x rows) and stops when the largest gradient component is
below tol (scipy's L-BFGS-B gtol), as tessera's L-BFGS does.

Data: Fashion-MNIST (60000 x 784 pixels scaled to [0, 1], 10 classes: multinomial) and a table
from tools/make_table_data (binary logistic, --rows x 100 features, seed 1, standardised).

Threads: one process with 2 threads for both (OPENBLAS_NUM_THREADS=2 for scikit-learn; tessera
sizes its own), and tessera's 2 processes x 1 thread.

Naive Bayes: GaussianNB, MultinomialNB and BernoulliNB(binarize=0.5) on the same pixels.
PCA: PCA(n_components=10) with the randomized solver (what svd_solver="auto" picks for this
shape) and the full SVD; the speed is against the faster of the two.

Least squares with penalties: Ridge, Lasso and ElasticNet (tol 1e-8) against linear_regression with
l2, l1 or both (tol 1e-9) on a make_table_data regression table (--rows x 100, seed 1),
standardised; the objective is the same for both, 1/2 the mean squared residual plus the penalties.

Usage: bench/run_ml.py [--runs 3] [--build build/release] [--rows 200000]
                       [--models linear,l1,penalised,kmeans,nb,pca,als]

ALS: no peer on Debian; explicit feedback's test RMSE against the generator's noise floor, implicit
feedback's precision at 10 against the true model's (tools/make_ratings_data, defaults, seed 1).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_env  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = "/usr/bin/python3"  # Debian's python3-sklearn
FASHION = "/usr/share/datasets/fashion-mnist"

# Each peer script starts with this: its spec, and Fashion-MNIST as scaled pixels and labels.
PRELUDE = r'''
import gzip, json, sys, time
import numpy as np
spec = json.loads(sys.argv[1])

def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)

def fashion(dtype):
    d = spec["dir"]
    x = (idx(d + "/train-images-idx3-ubyte.gz").reshape(60000, -1) / 255.0).astype(dtype)
    y = idx(d + "/train-labels-idx1-ubyte.gz").astype(np.int64)
    xt = (idx(d + "/t10k-images-idx3-ubyte.gz").reshape(10000, -1) / 255.0).astype(dtype)
    yt = idx(d + "/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return x, y, xt, yt
'''

SKLEARN_FIT = PRELUDE + r'''
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

if spec["data"] == "fashion-mnist":
    x, y, xt, yt = fashion(np.float64)
else:
    train = np.loadtxt(spec["train"], delimiter=",", skiprows=1)
    test = np.loadtxt(spec["test"], delimiter=",", skiprows=1)
    x, y, xt, yt = train[:, :-1], train[:, -1].astype(np.int64), test[:, :-1], test[:, -1].astype(np.int64)
if spec["standardize"]:
    scaler = StandardScaler().fit(x)
    x, xt = scaler.transform(x), scaler.transform(xt)
n = x.shape[0]
l1 = spec.get("l1", 0.0)
if l1 > 0:  # the L1 penalty alone: saga is the solver that minimises it with an unpenalised intercept
    model = LogisticRegression(penalty="l1", C=1.0 / (l1 * n), tol=spec["tol"],
                               max_iter=spec["max_iter"], solver="saga")
else:
    model = LogisticRegression(C=1.0 / (spec["l2"] * n), tol=spec["tol"], max_iter=spec["max_iter"],
                               solver="lbfgs")
start = time.perf_counter()
model.fit(x, y)
seconds = time.perf_counter() - start
m = x @ model.coef_.T + model.intercept_
if m.shape[1] == 1:
    m = np.hstack([np.zeros_like(m), m])
m -= m.max(axis=1, keepdims=True)
loss = np.mean(np.log(np.exp(m).sum(axis=1)) - m[np.arange(n), y])
objective = loss + spec["l2"] / 2 * np.sum(model.coef_ ** 2) + l1 * np.sum(np.abs(model.coef_))
auc = None
if model.classes_.size == 2:
    from sklearn.metrics import roc_auc_score
    auc = float(roc_auc_score(yt, model.predict_proba(xt)[:, 1]))
print(json.dumps({"seconds": seconds, "objective": float(objective), "test_auc": auc,
                  "test_accuracy": float(model.score(xt, yt)), "iterations": int(model.n_iter_.max())}))
'''


SKLEARN_KMEANS = PRELUDE + r'''
from sklearn.cluster import KMeans
x, _, xt, _ = fashion(np.float32)
model = KMeans(n_clusters=spec["clusters"], n_init=1, tol=1e-4, max_iter=300, algorithm="lloyd",
               random_state=spec["seed"])
start = time.perf_counter()
model.fit(x)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "inertia": float(model.inertia_),
                  "test_inertia": float(-model.score(xt)), "iterations": int(model.n_iter_)}))
'''


def run_peer(script, spec, env):
    """One scikit-learn fit in a fresh process: the JSON line it prints last."""
    r = subprocess.run([PEER, "-W", "ignore", "-c", script, json.dumps(spec)], env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_example(build, example, sets, nproc, run_dir, env=None):
    """`tessera train examples/ml/EXAMPLE.toml` with --set SETS: the last line of its metrics."""
    args = [os.path.join(build, "tessera"), "train", os.path.join(ROOT, f"examples/ml/{example}.toml"),
            "--set", f'train.run_dir="{run_dir}"', "-q"]
    for s in sets:
        args += ["--set", s]
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))][-1]


def run_sklearn_kmeans(seed, env):
    return run_peer(SKLEARN_KMEANS, {"dir": FASHION, "clusters": 10, "seed": seed}, env)


def run_tessera_kmeans(build, seed, nproc, run_dir):
    last = run_example(build, "kmeans", [f"train.seed={seed}"], nproc, run_dir)
    return {"seconds": last["fit_s"], "inertia": last["train_inertia"],
            "test_inertia": last["test_inertia"], "iterations": last["iterations"]}


def kmeans_table(a, env2, tmp):
    print("k-means, Fashion-MNIST, 10 clusters: medians over seeds 0 .. %d" % (a.runs - 1))
    print("| who | processes x threads | train inertia | test inertia | iterations | fit s | s per iteration | speed vs scikit-learn (fit, per iteration) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    peer, one_process, two = [], [], []
    for seed in range(a.runs):  # taking turns, as alternating() does
        peer.append(run_sklearn_kmeans(seed, env2))
        for nproc, runs in ((1, one_process), (2, two)):
            runs.append(run_tessera_kmeans(a.build, seed, nproc, os.path.join(tmp, f"km{nproc}")))
    rows = [("scikit-learn", "1 x 2", peer), ("tessera", "1 x 2", one_process), ("tessera", "2 x 1", two)]
    per_iteration = lambda rs: statistics.median(r["seconds"] / r["iterations"] for r in rs)
    for who, threads, rs in rows:
        ratio = ""
        if who == "tessera":
            ratio = (f"{med(peer, 'seconds') / med(rs, 'seconds'):.2f}x, "
                     f"{per_iteration(peer) / per_iteration(rs):.2f}x")
        print(f"| {who} | {threads} | {med(rs, 'inertia'):.1f} | {med(rs, 'test_inertia'):.1f} | "
              f"{med(rs, 'iterations'):.0f} | {med(rs, 'seconds'):.2f} | {1000 * per_iteration(rs):.1f} ms | {ratio} |",
              flush=True)


SKLEARN_NB = PRELUDE + r'''
from sklearn.metrics import log_loss
from sklearn.naive_bayes import BernoulliNB, GaussianNB, MultinomialNB
x, y, xt, yt = fashion(np.float32)
model = {"gaussian": GaussianNB(), "multinomial": MultinomialNB(),
         "bernoulli": BernoulliNB(binarize=0.5)}[spec["distribution"]]
start = time.perf_counter()
model.fit(x, y)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "test_accuracy": float(model.score(xt, yt)),
                  "test_log_loss": float(log_loss(yt, model.predict_proba(xt)))}))
'''


def nb_table(a, env2, tmp):
    print("naive Bayes, Fashion-MNIST pixels in [0, 1] (bernoulli: present above 0.5); fit s median of %d" % a.runs)
    print("| distribution | who | processes x threads | test accuracy | test log loss | fit s | speed vs scikit-learn |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for dist in ("gaussian", "multinomial", "bernoulli"):
        spec = {"dir": FASHION, "distribution": dist}
        def one(nproc):
            last = run_example(a.build, "naive_bayes", [f'model.distribution="{dist}"'], nproc,
                               os.path.join(tmp, f"nb{nproc}"))
            return {"seconds": last["fit_s"], "test_accuracy": last["test_accuracy"],
                    "test_log_loss": last["test_log_loss"]}
        peer, one_process, two = alternating(a.runs, [lambda: run_peer(SKLEARN_NB, spec, env2),
                                                      lambda: one(1), lambda: one(2)])
        rows = [("scikit-learn", "1 x 2", peer), ("tessera", "1 x 2", one_process), ("tessera", "2 x 1", two)]
        for who, threads, r in rows:
            ratio = f"{peer['seconds'] / r['seconds']:.2f}x" if who == "tessera" else ""
            print(f"| {dist} | {who} | {threads} | {100 * r['test_accuracy']:.2f}% | "
                  f"{r['test_log_loss']:.4f} | {r['seconds']:.3f} | {ratio} |", flush=True)


SKLEARN_PCA = PRELUDE + r'''
from sklearn.decomposition import PCA
x, _, xt, _ = fashion(np.float32)
model = PCA(n_components=10, svd_solver=spec["solver"], random_state=0)
start = time.perf_counter()
model.fit(x)
seconds = time.perf_counter() - start
z = model.transform(xt)
c = xt - model.mean_
print(json.dumps({"seconds": seconds, "train_explained_variance": float(model.explained_variance_ratio_.sum()),
                  "test_explained_variance": float((z ** 2).sum() / (c ** 2).sum())}))
'''


def pca_table(a, env2, tmp):
    print("PCA, 10 components of Fashion-MNIST's pixels; fit s median of %d" % a.runs)
    print("| who | solver | processes x threads | train variance kept | test variance kept | fit s | speed vs scikit-learn |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    def one(nproc):
        last = run_example(a.build, "pca", [], nproc, os.path.join(tmp, f"pca{nproc}"))
        return {"seconds": last["fit_s"], "train_explained_variance": last["train_explained_variance"],
                "test_explained_variance": last["test_explained_variance"]}
    peer = lambda solver: run_peer(SKLEARN_PCA, {"dir": FASHION, "solver": solver}, env2)
    randomized, full, one_process, two = alternating(
        a.runs, [lambda: peer("randomized"), lambda: peer("full"), lambda: one(1), lambda: one(2)])
    peers = [("randomized", randomized), ("full", full)]
    rows = [("scikit-learn", solver, "1 x 2", r) for solver, r in peers]
    rows += [("tessera", "covariance, one pass", "1 x 2", one_process),
             ("tessera", "covariance, one pass", "2 x 1", two)]
    fastest = min(r["seconds"] for _, r in peers)
    for who, solver, threads, r in rows:
        ratio = f"{fastest / r['seconds']:.2f}x" if who == "tessera" else ""
        print(f"| {who} | {solver} | {threads} | {100 * r['train_explained_variance']:.4f}% | "
              f"{100 * r['test_explained_variance']:.4f}% | {r['seconds']:.3f} | {ratio} |", flush=True)


SKLEARN_PENALISED = PRELUDE + r'''
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.preprocessing import StandardScaler
train = np.loadtxt(spec["train"], delimiter=",", skiprows=1)
test = np.loadtxt(spec["test"], delimiter=",", skiprows=1)
scaler = StandardScaler().fit(train[:, :-1])
x, y = scaler.transform(train[:, :-1]), train[:, -1]
xt, yt = scaler.transform(test[:, :-1]), test[:, -1]
n, l1, l2 = x.shape[0], spec["l1"], spec["l2"]
if l1 == 0:
    model = Ridge(alpha=l2 * n)
elif l2 == 0:
    model = Lasso(alpha=l1, tol=1e-8, max_iter=100000)
else:
    model = ElasticNet(alpha=l1 + l2, l1_ratio=l1 / (l1 + l2), tol=1e-8, max_iter=100000)
start = time.perf_counter()
model.fit(x, y)
seconds = time.perf_counter() - start
r = y - x @ model.coef_ - model.intercept_
objective = 0.5 * np.mean(r ** 2) + l1 * np.abs(model.coef_).sum() + 0.5 * l2 * (model.coef_ ** 2).sum()
print(json.dumps({"seconds": seconds, "objective": float(objective),
                  "test_rmse": float(np.sqrt(np.mean((yt - xt @ model.coef_ - model.intercept_) ** 2))),
                  "zeros": int((model.coef_ == 0).sum())}))
'''


def penalised_table(a, env2, tmp):
    out = os.path.join(tmp, "regression")
    subprocess.run([os.path.join(a.build, "tools/make_table_data"), "--out", out, "--task", "regression",
                    "--train", str(a.rows), "--test", "20000", "--features", "100", "--seed", "1"],
                   check=True, capture_output=True)
    print(f"least squares, table {a.rows} x 100 (standardised), Ridge / Lasso / ElasticNet; fit s median of {a.runs}")
    print("| penalty | who | processes x threads | objective | test RMSE | zero weights | fit s | speed vs scikit-learn |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, l1, l2 in (("ridge (l2 1e-3)", 0.0, 1e-3), ("lasso (l1 0.01)", 0.01, 0.0),
                         ("elastic net (l1 0.01, l2 0.01)", 0.01, 0.01)):
        spec = {"train": out + "/train.csv", "test": out + "/test.csv", "l1": l1, "l2": l2}
        def one(nproc):
            sets = [f'data.train="csv:{spec["train"]}"', f'data.test="csv:{spec["test"]}"',
                    f"model.l1={l1}", f"model.l2={l2}", "model.tol=1e-9"]
            last = run_example(a.build, "linear_regression", sets, nproc, os.path.join(tmp, f"pen{nproc}"))
            return {"seconds": last["fit_s"], "objective": last["objective"],
                    "test_rmse": last["test_rmse"], "zeros": None}
        peer, one_process, two = alternating(a.runs, [lambda: run_peer(SKLEARN_PENALISED, spec, env2),
                                                      lambda: one(1), lambda: one(2)])
        rows = [("scikit-learn", "1 x 2", peer), ("tessera", "1 x 2", one_process), ("tessera", "2 x 1", two)]
        for who, threads, r in rows:
            ratio = f"{peer['seconds'] / r['seconds']:.2f}x" if who == "tessera" else ""
            zeros = "-" if r["zeros"] is None else str(r["zeros"])
            print(f"| {name} | {who} | {threads} | {r['objective']:.10f} | {r['test_rmse']:.5f} | {zeros} | "
                  f"{r['seconds']:.3f} | {ratio} |", flush=True)


def als_table(a, tmp):
    """ALS has no peer on Debian (scikit-learn has none; Spark is not packaged): its quality is
    measured against the generator's truth, the noise floor and the true model's precision."""
    print("ALS, make_ratings_data (2000 users x 1000 items, rank 10, density 0.3, seed 1), "
          "examples/ml/als.toml and als_implicit.toml; fit s median of %d" % a.runs)
    print("| feedback | processes x threads | test score | the true model's | ratio | fit s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for feedback, example, score, truth_key in (("explicit", "als", "test_rmse", "noise"),
                                                ("implicit", "als_implicit", "test_precision_at_k",
                                                 "test_precision_at_10")):
        out = os.path.join(tmp, "ratings_" + feedback)
        subprocess.run([os.path.join(a.build, "tools/make_ratings_data"), "--out", out,
                        "--feedback", feedback], check=True, capture_output=True)
        truth = json.load(open(os.path.join(out, "truth.json")))[truth_key]
        sets = [f'data.train="csv:{out}/train.csv"', f'data.test="csv:{out}/test.csv"']
        def one(nproc):
            last = run_example(a.build, example, sets, nproc, os.path.join(tmp, f"als{nproc}"))
            return dict(last, seconds=last["fit_s"])
        fits = alternating(a.runs, [lambda: one(1), lambda: one(2)])
        for threads, r in zip(("1 x 2", "2 x 1"), fits):
            got, seconds = r[score], r["seconds"]
            name = "RMSE" if feedback == "explicit" else "precision@10"
            print(f"| {feedback} | {threads} | {name} {got:.4f} | {truth:.4f} | {got / truth:.3f} | "
                  f"{seconds:.2f} |", flush=True)


def run_sklearn(spec, env):
    return run_peer(SKLEARN_FIT, spec, env)


def run_tessera(build, spec, nproc, env, run_dir):
    args = [os.path.join(build, "tessera"), "train", os.path.join(ROOT, "examples/ml/logistic_regression.toml"),
            "--set", f"model.l2={spec['l2']}", "--set", f"model.tol={spec['tol']}",
            "--set", f"model.max_iter={spec['max_iter']}", "--set", f"model.l1={spec.get('l1', 0.0)}",
            "--set", f"model.standardize={'true' if spec['standardize'] else 'false'}",
            "--set", f'train.run_dir="{run_dir}"', "-q"]
    if spec["data"] != "fashion-mnist":
        args += ["--set", f'data.train="csv:{spec["train"]}"', "--set", f'data.test="csv:{spec["test"]}"',
                 "--set", 'data.label_column="y"']
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    lines = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    last = lines[-1]
    return {"seconds": last["fit_s"], "objective": last["objective"], "test_auc": last.get("test_auc"),
            "test_accuracy": last["test_accuracy"], "iterations": last["iterations"]}


def median(results):
    out = dict(results[len(results) // 2])
    out["seconds"] = statistics.median(r["seconds"] for r in results)
    return out


def alternating(runs, fits):
    """Each of `fits` run `runs` times, taking turns, so that a machine that slows down for a while
    slows all of them alike: the median of each."""
    results = [[] for _ in fits]
    for _ in range(runs):
        for out, fit in zip(results, fits):
            out.append(fit())
    return [median(r) for r in results]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=bench_env.HelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build/release"))
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--models", default="linear,l1,penalised,kmeans,nb,pca,als",
                    help="which comparisons: linear (logistic), l1 (L1 logistic), penalised (least "
                         "squares with ridge, lasso, elastic net), kmeans, nb (naive Bayes), pca, "
                         "als (against the generator's truth)")
    a = ap.parse_args()
    models = a.models.split(",")
    print(bench_env.header("scikit-learn 1.2 LogisticRegression(solver='lbfgs'), KMeans, naive Bayes"))
    env2 = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    with tempfile.TemporaryDirectory() as tmp:
        if "kmeans" in models:
            kmeans_table(a, env2, tmp)
        if "nb" in models:
            nb_table(a, env2, tmp)
        if "pca" in models:
            pca_table(a, env2, tmp)
        if "penalised" in models:
            penalised_table(a, env2, tmp)
        if "als" in models:
            als_table(a, tmp)
        if "linear" not in models and "l1" not in models:
            print(bench_env.footer())
            return
        subprocess.run([os.path.join(a.build, "tools/make_table_data"), "--out", tmp + "/binary",
                        "--train", str(a.rows), "--test", "20000", "--features", "100", "--seed", "1"],
                       check=True, capture_output=True)
        cases = [
            ("Fashion-MNIST, 10 classes", {"data": "fashion-mnist", "dir": FASHION, "l2": 1e-3,
                                           "tol": 1e-5, "max_iter": 1000, "standardize": False}),
            (f"table {a.rows} x 100, 2 classes", {"data": "csv", "train": tmp + "/binary/train.csv",
                                                  "test": tmp + "/binary/test.csv", "l2": 1e-4,
                                                  "tol": 1e-6, "max_iter": 1000, "standardize": True}),
            (f"table {a.rows} x 100, 2 classes, l1 1e-3 (scikit-learn: saga)",
             {"data": "csv", "train": tmp + "/binary/train.csv", "test": tmp + "/binary/test.csv",
              "l2": 0.0, "l1": 1e-3, "tol": 1e-6, "max_iter": 1000, "standardize": True}),
        ]
        if "l1" not in models:
            cases.pop()
        elif "linear" not in models:
            cases = cases[-1:]
        print(f"median of {a.runs} runs; same l2, tol and max_iter for both")
        print("| data | who | threads | objective | test accuracy | test AUC | iterations | fit s | speed vs scikit-learn |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, spec in cases:
            one = lambda nproc: run_tessera(a.build, spec, nproc, os.environ, os.path.join(tmp, f"run{nproc}"))
            peer, one_process, two = alternating(a.runs, [lambda: run_sklearn(spec, env2),
                                                          lambda: one(1), lambda: one(2)])
            rows = [("scikit-learn", "1 x 2", peer), ("tessera", "1 x 2", one_process), ("tessera", "2 x 1", two)]
            for who, threads, r in rows:
                ratio = f"{peer['seconds'] / r['seconds']:.2f}x" if who == "tessera" else ""
                auc = "-" if r.get("test_auc") is None else f"{r['test_auc']:.5f}"
                print(f"| {name} | {who} | {threads} | {r['objective']:.8f} | "
                      f"{100 * r['test_accuracy']:.2f}% | {auc} | {r['iterations']} | {r['seconds']:.2f} | {ratio} |",
                      flush=True)
    print(bench_env.footer())


if __name__ == "__main__":
    main()

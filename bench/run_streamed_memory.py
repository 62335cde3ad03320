#!/usr/bin/env python3
"""Peak resident memory of training from a CSV file: tessera streaming it (data.stream = true),
tessera loading it, and scikit-learn 1.2 / XGBoost 1.7 on the same file (read by numpy.loadtxt as
float32, what a user without pandas does; Debian 12 has no pandas by default), each one process
of 2 threads, the peak of each run measured the same way (GNU time's maximum resident set size).

Data: tools/make_table_data, --rows x 100 features, 2 classes, seed 1 (about 880 bytes a row).
Jobs: logistic regression (l2 1e-4, 20 L-BFGS iterations at most; scikit-learn
LogisticRegression(C = 1 / (l2 x rows), max_iter=20)), k-means (10 clusters, 10 Lloyd iterations,
one start; KMeans(n_init=1, max_iter=10)), boosted trees (binary, 20 rounds, depth 6, 255 bins;
XGBClassifier(tree_method="hist", n_estimators=20, max_depth=6)).

Usage: bench/run_streamed_memory.py [--rows 270000] [--build build/release]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_env  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = "/usr/bin/python3"

PEER_SCRIPT = r'''
import json, sys, time
import numpy as np
spec = json.loads(sys.argv[1])
start = time.perf_counter()
data = np.loadtxt(spec["train"], delimiter=",", skiprows=1, dtype=np.float32)
x, y = data[:, :-1], data[:, -1].astype(np.int64)
del data
test = np.loadtxt(spec["test"], delimiter=",", skiprows=1, dtype=np.float32)
xt, yt = test[:, :-1], test[:, -1].astype(np.int64)
loaded = time.perf_counter() - start
if spec["job"] == "logistic":
    from sklearn.linear_model import LogisticRegression
    model = LogisticRegression(C=1.0 / (1e-4 * len(y)), max_iter=20, tol=1e-9)
elif spec["job"] == "kmeans":
    from sklearn.cluster import KMeans
    model = KMeans(n_clusters=10, n_init=1, max_iter=10, tol=0, algorithm="lloyd", random_state=0)
else:
    from xgboost import XGBClassifier
    model = XGBClassifier(tree_method="hist", n_estimators=20, max_depth=6, max_bin=255,
                          learning_rate=0.3, n_jobs=2)
start = time.perf_counter()
model.fit(x, y)
fit = time.perf_counter() - start
score = float(model.score(xt, yt)) if spec["job"] != "kmeans" else -float(model.score(xt))
print(json.dumps({"fit_s": fit, "load_s": loaded, "score": score}))
'''

TESSERA_MODELS = {
    "logistic": 'type = "logistic_regression"\nl2 = 1e-4\nmax_iter = 20\ntol = 1e-9',
    "kmeans": 'type = "kmeans"\nclusters = 10\nmax_iter = 10\ntol = 1e-12',
    "trees": 'type = "boosted_trees"\nobjective = "binary"\nrounds = 20\nmax_depth = 6',
}
SCORES = {"logistic": "test_accuracy", "kmeans": "test_inertia", "trees": "test_accuracy"}


def peak_of(args, env):
    """Runs args under GNU time: (peak resident MiB, the command's stdout)."""
    r = subprocess.run(["/usr/bin/time", "-f", "PEAK_KB %M"] + args, env=env, capture_output=True,
                       text=True, check=True)
    kb = next(int(l.split()[1]) for l in r.stderr.splitlines() if l.startswith("PEAK_KB"))
    return kb / 1024.0, r.stdout


def tessera(build, job, data, stream, tmp):
    run_dir = os.path.join(tmp, "run")
    config = os.path.join(tmp, "job.toml")
    with open(config, "w") as f:
        f.write(f'[model]\n{TESSERA_MODELS[job]}\n[data]\ntrain = "csv:{data}/train.csv"\n'
                f'test = "csv:{data}/test.csv"\nlabel_column = "y"\n'
                f'stream = {"true" if stream else "false"}\n[train]\nrun_dir = "{run_dir}"\n')
    peak, _ = peak_of([os.path.join(build, "tessera"), "train", config, "-q"], os.environ)
    last = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))][-1]
    return peak, last["fit_s"], last[SCORES[job]]


def peer(job, data, env):
    spec = {"job": job, "train": f"{data}/train.csv", "test": f"{data}/test.csv"}
    peak, out = peak_of([PEER, "-W", "ignore", "-c", PEER_SCRIPT, json.dumps(spec)], env)
    r = json.loads(out.strip().splitlines()[-1])
    return peak, r["fit_s"], r["score"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=bench_env.HelpFormatter)
    ap.add_argument("--rows", type=int, default=270000)
    ap.add_argument("--build", default=os.path.join(ROOT, "build/release"))
    a = ap.parse_args()
    print(bench_env.header("scikit-learn 1.2, XGBoost 1.7 (numpy.loadtxt)"))
    env2 = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "table")
        subprocess.run([os.path.join(a.build, "tools/make_table_data"), "--out", data, "--train",
                        str(a.rows), "--test", "5000", "--features", "100", "--seed", "1"],
                       check=True, capture_output=True)
        size = os.path.getsize(os.path.join(data, "train.csv")) / 2**20
        print(f"train.csv: {a.rows} rows x 100 features, {size:.0f} MiB; one process of 2 threads")
        print("| job | who | peak resident MiB | share of the file | fit s | test score |")
        print("| --- | --- | --- | --- | --- | --- |")
        for job in ("logistic", "kmeans", "trees"):
            peer_name = "XGBoost hist" if job == "trees" else "scikit-learn"
            rows = [("tessera, streamed", tessera(a.build, job, data, True, tmp)),
                    ("tessera, loaded", tessera(a.build, job, data, False, tmp)),
                    (peer_name + ", loaded", peer(job, data, env2))]
            for who, (peak, fit, score) in rows:
                shown = f"{score:.4f}" if job != "kmeans" else f"inertia {score:.6g}"
                print(f"| {job} | {who} | {peak:.0f} | {peak / size:.2f} | {fit:.2f} | {shown} |",
                      flush=True)
    print(bench_env.footer())


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Every comparison of docs/ml.md in one run: tessera's estimators against scikit-learn 1.2
(bench/run_ml.py: linear models, k-means, naive Bayes, PCA; ALS against its generator's truth),
XGBoost 1.7 (bench/run_trees.py: boosted trees and the random forest) and the peak resident memory
of streamed training (bench/run_streamed_memory.py), on the same data and splits, each script's tables in
turn.

Usage: bench/run_estimators.py [--runs 3] [--build build/release]
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="fits a median is taken of")
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build/release"))
    a = ap.parse_args()
    failed = []
    for script, args in (("run_ml.py", ["--runs", str(a.runs)]),
                         ("run_trees.py", ["--runs", str(a.runs)]),
                         ("run_streamed_memory.py", [])):
        print(f"\n## {script}\n", flush=True)
        if subprocess.run([sys.executable, os.path.join(HERE, script), "--build", a.build] + args).returncode:
            failed.append(script)
    if failed:
        sys.exit("failed: " + ", ".join(failed))


if __name__ == "__main__":
    main()

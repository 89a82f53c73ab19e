"""The first seed's cleaning method, as a baseline for ``bench_clean.py``.

Run: ``python benchmarks/_seed_clean.py DATA_FOLDER OUT.parquet``. It reproduces the seed's
``load_and_clean_data`` step for step (walk the folder, ``pd.read_csv`` every ``.csv``, grow one
frame with ``pd.concat`` inside the loop, strip the names, drop the columns more than 95 %
"similar", replace ±inf by NaN and drop NaN rows, drop duplicates, keep the rows whose label
contains ``DoS`` or ``BENIGN``), then writes the result to Parquet so that its output cost is
comparable with ``flowsentinel data clean``. It prints one JSON line: seconds and shape.
"""

from __future__ import annotations

import json
import os
import sys
import time

import pandas as pd

COLUMN_SIMILARITY_THRESHOLD = 95


def get_percentage_columns_similarity(df: pd.DataFrame) -> pd.Series:
    return (1 - (df.nunique() / len(df))) * 100


def load_and_clean_data(data_path: str) -> pd.DataFrame:
    global_df = pd.DataFrame()
    for root, _dirs, files in os.walk(data_path):
        for file in files:
            if file.endswith(".csv"):
                df = pd.read_csv(os.path.join(root, file))
                global_df = pd.concat([global_df, df], ignore_index=True)

    global_df.columns = global_df.columns.str.strip()

    # Drop columns according to similarity threshold
    columns_to_drop = get_percentage_columns_similarity(global_df)
    columns_to_drop = columns_to_drop[columns_to_drop > COLUMN_SIMILARITY_THRESHOLD].index
    # Don't drop the label column
    columns_to_drop = columns_to_drop.drop("Label")
    global_df = global_df.drop(columns=columns_to_drop)
    global_df = global_df.replace([float("-inf"), float("inf")], float("nan")).dropna()
    # drop duplicates
    global_df = global_df.drop_duplicates()
    # Drop all lines where the label is not BENIGN or does not contains "DoS"
    global_df = global_df[
        global_df["Label"].str.contains("DoS") | global_df["Label"].str.contains("BENIGN")
    ]
    return global_df


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: _seed_clean.py DATA_FOLDER OUT.parquet", file=sys.stderr)
        return 2
    start = time.perf_counter()
    frame = load_and_clean_data(argv[0])
    cleaned = time.perf_counter()
    frame.to_parquet(argv[1], index=False)
    done = time.perf_counter()
    report = {
        "seconds": done - start,
        "clean_seconds": cleaned - start,
        "write_seconds": done - cleaned,
        "rows": len(frame),
        "columns": frame.shape[1],
        "labels": {str(k): int(v) for k, v in frame["Label"].value_counts().items()},
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

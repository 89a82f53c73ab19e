"""train → MLflow (a real SQLite store in a temporary home) → registry → load back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flowsentinel.core.settings import get_settings

pytestmark = pytest.mark.slow


def _use_home(home: Path) -> None:
    os.environ["FLOWSENTINEL_HOME"] = str(home)
    get_settings.cache_clear()


def _loky_workers() -> list[int]:
    """loky worker processes of this process (from /proc; empty where there is none)."""
    me, out = os.getpid(), []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if ppid == me and b"popen_loky_posix" in cmd:
            out.append(int(entry.name))
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cic_csv: Path) -> dict[str, Any]:
    from flowsentinel.models import TrainConfig, train

    home = tmp_path_factory.mktemp("store")
    saved = os.environ.get("FLOWSENTINEL_HOME")
    _use_home(home)
    try:
        keep: dict[str, Any] = {}
        result = train(
            TrainConfig(
                sources=[str(cic_csv)], task="dos", models=["dt", "lr"], n_iter=2, n_jobs=2
            ),
            keep=keep,
        )
    finally:
        if saved is not None:
            os.environ["FLOWSENTINEL_HOME"] = saved
        get_settings.cache_clear()
    return {"home": home, "result": result, "keep": keep}


@pytest.fixture
def store(trained: dict[str, Any], flowsentinel_home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FLOWSENTINEL_HOME", str(trained["home"]))
    get_settings.cache_clear()
    yield trained
    get_settings.cache_clear()


def test_result_has_the_documented_shape(store: dict[str, Any]) -> None:
    r = store["result"]
    assert {"dataset", "task", "protocol", "n_train", "n_test", "models", "champion"} <= set(r)
    assert (r["dataset"], r["task"], r["protocol"]) == ("cicids2017", "dos", "holdout")
    for m in r["models"]:
        assert {"name", "params", "metrics", "confusion_matrix"} <= set(m)
        assert set(m["metrics"]) >= {
            "f1",
            "precision",
            "recall",
            "roc_auc",
            "pr_auc",
            "accuracy",
            "balanced_accuracy",
            "fpr",
            "fit_seconds",
            "predict_seconds",
        }
        assert np.sum(m["confusion_matrix"]) == r["n_test"]
    best = max(r["models"], key=lambda m: m["metrics"]["f1"])
    assert r["champion"] == {
        "name": best["name"],
        "registered_model": "flowsentinel-cicids2017-dos",
        "version": 1,
    }
    assert best["metrics"]["f1"] > 0.9  # the generated DoS flows are easy to separate


def test_runs_alias_and_model_exist_in_the_store(store: dict[str, Any]) -> None:
    from flowsentinel.models import tracking

    mlflow = tracking.configure()
    assert tracking.tracking_uri().startswith("sqlite:///")
    assert Path(store["home"], "mlflow.db").is_file()
    client = mlflow.MlflowClient()
    r = store["result"]
    parent = client.get_run(r["parent_run_id"])
    assert parent.data.params["protocol"] == "holdout"
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["flowsentinel.pid"] == str(os.getpid())
    children = client.search_runs(
        [r["experiment_id"]], filter_string=f"tags.mlflow.parentRunId = '{r['parent_run_id']}'"
    )
    assert sorted(c.info.run_name for c in children) == ["dt", "lr"]
    for child in children:
        assert "f1" in child.data.metrics and child.info.status == "FINISHED"
        files = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
        assert {"plots/confusion_matrix.png", "plots/roc_pr.png"} <= files
    mv = client.get_model_version_by_alias("flowsentinel-cicids2017-dos", "champion")
    assert str(mv.version) == "1"
    assert "Test metrics" in (mv.description or "")
    assert mv.tags["flowsentinel.complete"] == "true" and mv.tags["model"] in ("dt", "lr")
    card = client.download_artifacts(mv.run_id, "model_card.md")
    assert Path(card).read_text() == mv.description


def test_model_loads_back_and_predicts_as_before_logging(store: dict[str, Any]) -> None:
    import mlflow.pyfunc

    from flowsentinel.models import tracking
    from flowsentinel.scoring import Detector

    tracking.configure()
    champion = store["result"]["champion"]["name"]
    before = store["keep"][champion]
    X = store["keep"]["_test"]
    loaded = mlflow.pyfunc.load_model("models:/flowsentinel-cicids2017-dos@champion")
    np.testing.assert_array_equal(np.asarray(loaded.predict(X)), before.predict(X))
    det = Detector.load("flowsentinel-cicids2017-dos")
    assert det.version == "1" and det.task == "dos" and det.classes == ["BENIGN", "DoS"]
    verdicts = det.predict(X)
    np.testing.assert_allclose(verdicts.proba, before.predict_proba(X))
    assert set(verdicts.labels) <= {"BENIGN", "DoS"}


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWSENTINEL_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "flowsentinel", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_cli_models_list_promote_and_evaluate(store: dict[str, Any], cic_csv: Path) -> None:
    home = store["home"]
    listed = _cli("models", "list", "--json", home=home)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert rows[0]["name"] == "flowsentinel-cicids2017-dos" and "champion" in rows[0]["aliases"]
    bad = _cli("models", "promote", "flowsentinel-cicids2017-dos", "9", home=home)
    assert bad.returncode == 4 and "no version 9" in bad.stderr
    assert "Traceback" not in bad.stderr
    ev = _cli("evaluate", "flowsentinel-cicids2017-dos", str(cic_csv), "--json", home=home)
    assert ev.returncode == 0, ev.stderr
    out = json.loads(ev.stdout)
    assert out["task"] == "dos" and len(out["models"]) == 1
    assert out["models"][0]["metrics"]["f1"] > 0.9
    missing = _cli("evaluate", "nosuch-model", str(cic_csv), home=home)
    assert missing.returncode == 4 and "nosuch-model" in missing.stderr


def test_cli_train_json_on_unsw_seed_b_features(unsw_csv: Path, tmp_path: Path) -> None:
    res = _cli(
        "train",
        str(unsw_csv),
        "--task",
        "attack",
        "--models",
        "dt,seed-b",
        "--features",
        "seed-b",
        "--protocol",
        "seed",
        "--n-iter",
        "0",
        "--json",
        home=tmp_path / "home",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)  # nothing but the JSON object on stdout
    assert out["dataset"] == "unsw-nb15" and out["protocol"] == "seed"
    assert "proto" not in out["features"] and len(out["features"]) == 41
    assert out["champion"]["registered_model"] == "flowsentinel-unsw-nb15-attack"


def test_cli_train_errors_are_one_line(cic_csv: Path, tmp_path: Path) -> None:
    res = _cli("train", str(cic_csv), "--models", "rf,nope", home=tmp_path / "h")
    assert res.returncode == 2 and "unknown model nope" in res.stderr
    res = _cli("train", str(cic_csv), "--protocol", "files", home=tmp_path / "h")
    assert res.returncode == 2 and "--test" in res.stderr
    res = _cli("train", str(cic_csv), "--features", "seed-b", home=tmp_path / "h")
    assert res.returncode == 2 and "seed-b" in res.stderr
    assert all("Traceback" not in r for r in (res.stderr, res.stdout))


def test_knn_search_sees_a_sample_and_the_model_every_training_row(
    cic_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The k-NN search is cut to ``search_rows`` stratified training rows (its cost grows with
    the square of the rows); the best parameters are then fitted on all of them."""
    import dataclasses

    from sklearn.model_selection import RandomizedSearchCV

    from flowsentinel.models import TrainConfig, train, zoo

    monkeypatch.setitem(zoo.SPECS, "knn", dataclasses.replace(zoo.SPECS["knn"], search_rows=300))
    seen: list[tuple[int, float]] = []
    original = RandomizedSearchCV.fit

    def recording_fit(self, X, y=None, **kw):  # type: ignore[no-untyped-def]
        seen.append((len(X), float(np.mean(y))))
        return original(self, X, y, **kw)

    monkeypatch.setattr(RandomizedSearchCV, "fit", recording_fit)
    _use_home(tmp_path)
    try:
        keep: dict[str, Any] = {}
        result = train(
            TrainConfig(sources=[str(cic_csv)], task="dos", models=["knn"], n_iter=2), keep=keep
        )
    finally:
        get_settings.cache_clear()
    n_train = result["n_train"]
    assert n_train > 1000
    assert [rows for rows, _ in seen] == [300]
    assert 0.0 < seen[0][1] < 1.0  # both classes in the sample
    knn = keep["knn"][-1]
    assert knn.n_samples_fit_ > 300  # refitted on every (undersampled) training row
    assert set(result["models"][0]["params"]) == {"n_neighbors", "p"}


def test_permutation_importance_rows_follow_the_prediction_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pandas as pd
    import sklearn.inspection
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline

    from flowsentinel.models.plots import feature_importance

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(3000, 10)), columns=[f"c{i}" for i in range(10)])
    y = (X["c0"] > 0).astype(int).to_numpy()
    pipe = Pipeline([("model", KNeighborsClassifier())]).fit(X, y)
    rows: list[int] = []
    original = sklearn.inspection.permutation_importance

    def recording(estimator, Xs, ys, **kw):  # type: ignore[no-untyped-def]
        rows.append(len(Xs))
        return original(estimator, Xs, ys, **kw)

    monkeypatch.setattr(sklearn.inspection, "permutation_importance", recording)
    fast = feature_importance(pipe, X, y, seed=1)
    slow = feature_importance(pipe, X, y, seed=1, seconds_per_row=0.1, budget_seconds=30)
    middle = feature_importance(pipe, X, y, seed=1, seconds_per_row=0.0005, budget_seconds=3)
    assert rows == [1000, 100, 300]  # 3 / (0.0005 * 2 repeats * 10 features) = 300
    assert fast.index[0] == "c0" and set(slow.index) == set(X.columns) and len(middle) == 10


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_failing_train_ends_its_runs_failed_and_stops_its_workers(
    cic_csv: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last in this file: the search reuses the workers the trains above left warm."""
    import mlflow.sklearn

    from flowsentinel.models import TrainConfig, tracking, train

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(mlflow.sklearn, "log_model", full)
    workers: list[int] = []  # loky workers alive at each progress step
    with pytest.raises(OSError, match="No space"):
        train(
            TrainConfig(sources=[str(cic_csv)], task="dos", models=["dt"], n_iter=2, n_jobs=2),
            progress=lambda text: workers.append(len(_loky_workers())),
        )
    assert max(workers) == 2  # the search ran in two worker processes
    assert _loky_workers() == []  # shut down at once, not left to loky's 300 s idle timeout
    client = tracking.configure().MlflowClient()
    runs = client.search_runs([tracking.experiment_id("flowsentinel-cicids2017-dos")])
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [
        ("dt", "FAILED"),
        ("train dt (holdout)", "FAILED"),
    ]
    assert client.search_model_versions() == []


def test_a_test_file_of_one_class_is_scored_but_training_rows_need_two(
    cic_csv: Path, tmp_path: Path
) -> None:
    """``--protocol files``: a test day of benign traffic only is a fair test; training rows of
    one class are not (one line names the labels and the task that fits them)."""
    from flowsentinel.datasets.synthetic import generate_flows, write_cic_csv

    other_day = write_cic_csv(generate_flows(600, seed=99), tmp_path / "other-day.csv")
    header, *rows = other_day.read_text().splitlines(keepends=True)
    benign = tmp_path / "benign-day.csv"
    benign.write_text(header + "".join(r for r in rows if r.rstrip().endswith(",BENIGN")))
    res = _cli(
        "train", str(cic_csv), "--protocol", "files", "--test", str(benign), "--models", "dt",
        "--n-iter", "0", "--no-register", "--json", home=tmp_path / "h",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["n_test"] > 0
    res = _cli("train", str(benign), "--models", "dt", "--n-iter", "0", home=tmp_path / "h")
    assert res.returncode == 2 and "leaves one class" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1

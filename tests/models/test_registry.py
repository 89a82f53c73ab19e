"""Registration is complete or absent; `models list` tells incomplete versions apart, `--repair`
removes them and `promote` refuses them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flowsentinel.cli.main import app
from flowsentinel.models import processes, registry, tracking

NAME = "flowsentinel-test-dos"
META = {"dataset": "cicids2017", "task": "dos", "model": "dt", "feature_set": "all",
        "protocol": "holdout"}  # fmt: skip
CARD = "# card\n"
CHECK_COMPILES = registry.check_compiles


@pytest.fixture(autouse=True)
def _no_compile_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests register a model URI that holds no model: the compile check (tested in
    ``test_training.py`` with real models and below) is left out."""
    monkeypatch.setattr(registry, "check_compiles", lambda model_uri, meta: None)


def _run(tags: dict[str, str] | None = None) -> str:
    """A finished run of this process (or owned by ``tags``) in a flowsentinel experiment."""
    client = tracking.configure().MlflowClient()
    run = client.create_run(tracking.experiment_id(NAME), tags=tags or processes.owner_tags())
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def _register(run_id: str) -> str:
    return registry.register("file:///nowhere/model", run_id, NAME, CARD, META, model_id=None)


def _client() -> Any:
    return tracking.configure().MlflowClient()


def _versions() -> list[tuple[int, str, list[str]]]:
    return [(r["version"], r["state"], r["aliases"]) for r in registry.list_versions()]


def test_a_registered_version_has_card_tags_flag_and_alias(empty_store: Path) -> None:
    assert _register(_run()) == "1"
    mv = _client().get_model_version_by_alias(NAME, "champion")
    assert str(mv.version) == "1" and mv.description == CARD
    assert mv.tags == {**META, registry.COMPLETE_TAG: "true"}
    assert _versions() == [(1, "ready", ["champion"])]


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_a_registration_interrupted_before_it_completes_is_removed(
    empty_store: Path, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]
) -> None:
    _register(_run())
    client_class = type(_client())

    def stop(self: Any, *args: Any) -> None:
        raise error("stop")

    monkeypatch.setattr(client_class, "set_model_version_tag", stop)
    with pytest.raises(error):
        _register(_run())
    assert _versions() == [(1, "ready", ["champion"])]  # the previous champion stays


def test_a_registration_interrupted_after_it_completes_is_kept(
    empty_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(_run())

    def stop(self: Any, *args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(type(_client()), "set_registered_model_alias", stop)
    with pytest.raises(KeyboardInterrupt):
        _register(_run())
    assert _versions() == [(2, "ready", []), (1, "ready", ["champion"])]


def _left_by(owner: dict[str, str]) -> None:
    """A version as a train killed right after creating it leaves it."""
    _client().create_model_version(
        NAME,
        "file:///nowhere/model",
        run_id=_run(owner),
        tags={**META, registry.COMPLETE_TAG: "false"},
        description=CARD,
    )


def test_a_model_that_does_not_compile_is_not_registered(
    empty_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.sklearn
    from sklearn.naive_bayes import GaussianNB
    from sklearn.pipeline import Pipeline

    from flowsentinel.models.compiled import CompileError

    monkeypatch.setattr(registry, "check_compiles", CHECK_COMPILES)
    monkeypatch.setattr(mlflow.sklearn, "load_model", lambda uri: Pipeline([("nb", GaussianNB())]))
    meta = {**META, "features": ["a", "b"], "categorical": []}
    with pytest.raises(CompileError, match="file:///nowhere/model is not registered"):
        registry.register("file:///nowhere/model", _run(), NAME, CARD, meta, model_id=None)
    assert _versions() == []


def test_list_repair_and_promote_of_incomplete_versions(empty_store: Path) -> None:
    _register(_run())
    sleeper = subprocess.Popen(["sleep", "30"])
    gone = {
        **processes.owner_tags(),
        processes.PID_TAG: str(sleeper.pid),
        processes.START_TAG: processes.start_mark(sleeper.pid) or "",
    }
    sleeper.kill()
    sleeper.wait()
    _left_by(gone)  # version 2: its train was killed
    _left_by(processes.owner_tags())  # version 3: its train (this process) still runs
    assert _versions() == [
        (3, "registering", []),
        (2, "incomplete", []),
        (1, "ready", ["champion"]),
    ]
    runner = CliRunner()
    shown = runner.invoke(app, ["models", "list"])
    assert shown.exit_code == 0 and "incomplete" in shown.stderr and "--repair" in shown.stderr
    for version, word in (("2", "incomplete"), ("3", "still being registered")):
        refused = runner.invoke(app, ["models", "promote", NAME, version])
        assert refused.exit_code == 4 and word in refused.stderr
    repaired = runner.invoke(app, ["models", "list", "--repair"])
    assert repaired.exit_code == 0 and f"removed incomplete version 2 of {NAME}" in repaired.stderr
    assert _versions() == [(3, "registering", []), (1, "ready", ["champion"])]


@pytest.mark.parametrize(
    ("tags", "description", "state"),
    [
        ({registry.COMPLETE_TAG: "true"}, "card", "ready"),
        ({**META}, "card", "ready"),  # registered before the flag existed
        ({**META}, None, "incomplete"),  # ... and stopped before its card
        ({"team": "x"}, None, "ready"),  # not registered by flowsentinel: not judged
        ({**META, registry.COMPLETE_TAG: "false"}, "card", "incomplete"),  # no owner known
    ],
)
def test_version_state(tags: dict[str, str], description: str | None, state: str) -> None:
    assert registry.version_state(tags, description, owner={}) == state

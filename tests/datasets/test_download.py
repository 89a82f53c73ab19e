"""download_dataset: once per data set, cached in FLOWSENTINEL_HOME, offline fails at once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from flowsentinel.core.errors import FlowsentinelError
from flowsentinel.core.settings import Settings, get_settings
from flowsentinel.datasets.download import OfflineError, download_dataset

CIC_HANDLE = "chethuhn/network-intrusion-dataset"
UNSW_HANDLE = "mrwellsdavid/unsw-nb15"


class FixtureDownloader:
    """Writes a small CSV into a folder of its own and returns that folder (counts calls)."""

    def __init__(self, root: Path, *, with_csv: bool = True) -> None:
        self.root = root
        self.with_csv = with_csv
        self.calls: list[str] = []

    def __call__(self, handle: str) -> str:
        self.calls.append(handle)
        folder = self.root / handle.replace("/", "__") / f"v{len(self.calls)}"
        folder.mkdir(parents=True)
        if self.with_csv:
            (folder / "flows.csv").write_text("Flow Duration,Total Fwd Packets,Label\n1,2,BENIGN\n")
        else:
            (folder / "readme.txt").write_text("nothing here")
        return str(folder)


def test_downloads_once_then_uses_the_registry(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    fake = FixtureDownloader(tmp_path / "kaggle")
    first = download_dataset("cicids2017", settings=settings, downloader=fake)
    assert fake.calls == [CIC_HANDLE]
    assert (first / "flows.csv").is_file()
    second = download_dataset("cicids2017", settings=settings, downloader=fake)
    assert second == first
    assert fake.calls == [CIC_HANDLE]  # not called again
    registry = json.loads((tmp_path / "home" / "downloads.json").read_text())
    assert registry == {CIC_HANDLE: str(first)}


def test_default_settings_use_flowsentinel_home(flowsentinel_home: Path, tmp_path: Path) -> None:
    fake = FixtureDownloader(tmp_path / "kaggle")
    folder = download_dataset("unsw-nb15", downloader=fake)
    assert fake.calls == [UNSW_HANDLE]
    assert get_settings().home == flowsentinel_home
    registry = json.loads((flowsentinel_home / "downloads.json").read_text())
    assert registry[UNSW_HANDLE] == str(folder)
    download_dataset("unsw-nb15", downloader=fake)
    assert fake.calls == [UNSW_HANDLE]


def test_force_downloads_again(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    fake = FixtureDownloader(tmp_path / "kaggle")
    first = download_dataset("cicids2017", settings=settings, downloader=fake)
    again = download_dataset("cicids2017", settings=settings, downloader=fake, force=True)
    assert len(fake.calls) == 2
    assert again != first
    registry = json.loads((tmp_path / "home" / "downloads.json").read_text())
    assert registry == {CIC_HANDLE: str(again)}


def test_two_data_sets_are_registered_separately(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    fake = FixtureDownloader(tmp_path / "kaggle")
    a = download_dataset("cicids2017", settings=settings, downloader=fake)
    b = download_dataset("unsw-nb15", settings=settings, downloader=fake)
    assert a != b
    registry = json.loads((tmp_path / "home" / "downloads.json").read_text())
    assert registry == {CIC_HANDLE: str(a), UNSW_HANDLE: str(b)}


def test_a_vanished_download_is_fetched_again(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    fake = FixtureDownloader(tmp_path / "kaggle")
    first = download_dataset("cicids2017", settings=settings, downloader=fake)
    (first / "flows.csv").unlink()
    first.rmdir()
    second = download_dataset("cicids2017", settings=settings, downloader=fake)
    assert len(fake.calls) == 2
    assert second.is_dir()


def test_a_download_without_flow_files_is_an_error(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    fake = FixtureDownloader(tmp_path / "kaggle", with_csv=False)
    with pytest.raises(FlowsentinelError, match="no CSV or parquet"):
        download_dataset("cicids2017", settings=settings, downloader=fake)
    assert not (tmp_path / "home" / "downloads.json").exists()


def test_network_errors_become_offline_errors(tmp_path: Path) -> None:
    def broken(handle: str) -> str:
        raise ConnectionError(f"cannot reach kaggle for {handle}\nsecond line")

    with pytest.raises(OfflineError) as exc:
        download_dataset("cicids2017", settings=Settings(home=tmp_path / "home"), downloader=broken)
    message = str(exc.value)
    assert "\n" not in message
    assert "flowsentinel data clean" in message
    assert "--dataset cicids2017" in message
    assert exc.value.exit_code != 0


def test_offline_fails_at_once_with_advice(tmp_path: Path) -> None:
    fake = FixtureDownloader(tmp_path / "kaggle")
    settings = Settings(home=tmp_path / "home", offline=True)
    started = time.perf_counter()
    with pytest.raises(OfflineError) as exc:
        download_dataset("unsw-nb15", settings=settings, downloader=fake)
    assert time.perf_counter() - started < 1.0
    assert fake.calls == []
    message = str(exc.value)
    assert "flowsentinel data clean /path/to/folder --dataset unsw-nb15" in message
    assert "offline" in message.lower()


def test_offline_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWSENTINEL_OFFLINE", "1")
    get_settings.cache_clear()
    fake = FixtureDownloader(tmp_path / "kaggle")
    with pytest.raises(OfflineError):
        download_dataset("cicids2017", downloader=fake)
    assert fake.calls == []


def test_offline_still_returns_an_earlier_download(tmp_path: Path) -> None:
    fake = FixtureDownloader(tmp_path / "kaggle")
    first = download_dataset("cicids2017", settings=Settings(home=tmp_path / "h"), downloader=fake)
    offline = Settings(home=tmp_path / "h", offline=True)
    assert download_dataset("cicids2017", settings=offline, downloader=fake) == first
    assert len(fake.calls) == 1


def test_unknown_data_set(tmp_path: Path) -> None:
    with pytest.raises(FlowsentinelError, match="unknown data set"):
        download_dataset("kdd99", settings=Settings(home=tmp_path / "h"))


@pytest.mark.integration
def test_real_kagglehub_without_network_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real kagglehub path behind a dead proxy: an OfflineError within seconds."""
    dead = "http://127.0.0.1:9"
    for name in (
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "https_proxy",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.setenv(name, dead)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    started = time.perf_counter()
    with pytest.raises(OfflineError) as exc:
        download_dataset("cicids2017", settings=Settings(home=tmp_path / "home"))
    assert time.perf_counter() - started < 15.0
    message = str(exc.value)
    assert "no network" in message
    assert "flowsentinel data clean" in message
    assert "\n" not in message
    assert not (tmp_path / "home" / "downloads.json").exists()

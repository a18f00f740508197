"""The console's API on a SQLite database the sink's writer filled: the token guards every
``/api`` route, the answers are the order's story, the anomalies and the counts, and none of them
carries a stored raw record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from paynotify.cli import main
from paynotify.console.app import create_app
from paynotify.console.settings import load_console_settings
from sinks.reader import DatabaseReader
from tests.support import browser
from tests.support.apt import AptUnavailable
from tests.support.console_data import RAW_MARKER, TOKEN, fill_database, write_config

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    database = tmp_path / "sink.db"
    fill_database(database)
    return write_config(tmp_path, database)


@pytest.fixture
def client(config: Path) -> Iterator[TestClient]:
    settings = load_console_settings(config)
    reader = DatabaseReader(settings.database_url)
    with TestClient(create_app(settings, reader)) as client:
        yield client
    reader.close()


API = ["/api/orders/o-1", "/api/anomalies", "/api/stats"]


@pytest.mark.parametrize("path", API)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token-wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer"},
    ],
)
def test_api_without_the_token_answers_401_and_no_data(
    client: TestClient, path: str, headers: dict[str, str]
) -> None:
    answer = client.get(path, headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {"detail": "a valid bearer token is required"}
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "o-1" not in answer.text and "amount" not in answer.text


@pytest.mark.parametrize("path", API)
def test_api_with_the_token_answers_and_is_not_cached(client: TestClient, path: str) -> None:
    answer = client.get(path, headers=AUTH)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"


def test_order_story_lists_the_timeline_in_time_order(client: TestClient) -> None:
    story = client.get("/api/orders/o-1", headers=AUTH).json()
    assert story["order"]["status"] == "paid" and story["order"]["amount_minor"] == 101
    assert sorted(e["what"] for e in story["timeline"]) == [
        "anomaly",
        "event",
        "notification",
        "notification",
    ]
    notifications = [e for e in story["timeline"] if e["what"] == "notification"]
    decisions = {e["notify_id"]: e["decision"] for e in notifications}
    assert decisions == {"n-1": "paid", "n-2": "already_paid"}
    times = [datetime.fromisoformat(e["at"]) for e in story["timeline"]]
    assert times == sorted(times)


def test_order_story_without_an_order_row_still_tells_the_anomaly(client: TestClient) -> None:
    story = client.get("/api/orders/o-2", headers=AUTH).json()
    assert story["order"] is None
    assert [e["reason"] for e in story["timeline"]] == ["order_missing"]


def test_order_unknown_answers_404(client: TestClient) -> None:
    answer = client.get("/api/orders/o-404", headers=AUTH)
    assert answer.status_code == 404
    assert answer.json() == {"detail": "nothing on record for this order number"}
    assert client.get("/api/orders/" + "x" * 129, headers=AUTH).status_code == 422


def test_anomalies_filter_by_reason_time_and_limit(client: TestClient) -> None:
    def reasons(**params: str | int) -> list[str]:
        answer = client.get("/api/anomalies", params=params, headers=AUTH)
        assert answer.status_code == 200, answer.text
        return sorted(a["reason"] for a in answer.json())

    assert reasons() == ["amount_mismatch", "order_missing", "undecodable_record"]
    assert reasons(reason="order_missing") == ["order_missing"]
    assert reasons(since="2h") == reasons()
    assert reasons(since="2999-01-01T00:00:00Z") == []
    assert len(reasons(limit=2)) == 2


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"since": "yesterday"}])
def test_anomalies_refuse_an_unbounded_limit_or_a_bad_time(
    client: TestClient, params: dict[str, str | int]
) -> None:
    assert client.get("/api/anomalies", params=params, headers=AUTH).status_code == 422


def test_stats_count_orders_by_status_and_the_last_hour(client: TestClient) -> None:
    stats = client.get("/api/stats", headers=AUTH).json()
    assert stats["orders_by_status"] == {"created": 1, "paid": 2}
    assert stats["orders_total"] == 3
    hour = stats["last_hour"]
    assert hour["window_seconds"] == 3600
    assert (hour["notifications_received"], hour["orders_paid"], hour["anomalies"]) == (3, 2, 3)


def test_stats_leave_out_what_was_recorded_before_the_window(config: Path) -> None:
    settings = load_console_settings(config)
    reader = DatabaseReader(settings.database_url)
    later = lambda: datetime.now(UTC) + timedelta(hours=2)  # noqa: E731
    with TestClient(create_app(settings, reader, now=later)) as client:
        hour = client.get("/api/stats", headers=AUTH).json()["last_hour"]
    reader.close()
    assert (hour["notifications_received"], hour["orders_paid"], hour["anomalies"]) == (0, 0, 0)


def test_no_answer_carries_a_stored_raw_record(client: TestClient) -> None:
    paths = [*API, "/api/orders/o-2", "/api/anomalies?reason=undecodable_record", "/"]
    for path in paths:
        answer = client.get(path, headers=AUTH)
        assert answer.status_code == 200
        assert RAW_MARKER not in answer.text and '"payload"' not in answer.text


def test_public_routes_hold_no_payment_data(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    page = client.get("/")
    assert (
        page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    )
    assert "o-1" not in page.text
    assert client.get("/console.js").headers["content-type"].startswith("text/javascript")
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/api/orders/{out_trade_no}", "/api/anomalies", "/api/stats"}
    assert "o-1" not in client.get("/openapi.json").text
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-static/swagger-ui-bundle.js" in docs.text
    assert "https://" not in docs.text  # nothing from a CDN: no network outside may be reachable
    assert client.get("/docs-static/swagger-ui-bundle.js").status_code == 200
    redoc = client.get("/redoc").text
    assert "/docs-static/redoc.standalone.js" in redoc and "https://" not in redoc
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


@pytest.mark.parametrize(
    ("console", "message"),
    [
        ("", "no [console] section"),
        ('[console]\nlisten = "127.0.0.1:8001"\n', "[console] token is missing"),
        ('[console]\ntoken = "short-secret"\n', "[console] token is too short"),
        ('[console]\ntoken = "env:PAYNOTIFY_TEST_UNSET"\n', "PAYNOTIFY_TEST_UNSET is not set"),
        (f'[console]\ntoken = "{TOKEN}"\nlisten = "8001"\n', "listen must be host:port"),
        (f'[console]\ntoken = "{TOKEN}"\nport = 1\n', "[console] port: Extra inputs"),
    ],
)
def test_console_refuses_a_missing_or_short_token_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], console: str, message: str
) -> None:
    path = tmp_path / "paynotify.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/sink.db"\n\n{console}')
    assert main(["console", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("paynotify: ") and message in err and err.count("\n") == 1
    assert "short-secret" not in err and TOKEN not in err


def test_console_refuses_an_unmigrated_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, tmp_path / "empty.db")
    assert main(["console", "--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith("paynotify: ")


@pytest.mark.parametrize(("ci", "outcome"), [("true", "Failed"), ("", "Skipped")])
def test_browser_test_without_chromium_fails_on_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    def unavailable(package: str) -> None:
        raise AptUnavailable(f"{package} is not installed and cannot be installed here")

    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(browser.shutil, "which", lambda _name: None)
    monkeypatch.setattr(browser, "apt_install", unavailable)
    with pytest.raises(BaseException) as caught:
        browser.browser_paths()
    assert type(caught.value).__name__ == outcome
    assert "chromium-driver is not installed" in str(caught.value)


def test_api_answers_503_when_the_database_does_not_answer(config: Path, tmp_path: Path) -> None:
    settings = load_console_settings(config)
    reader = DatabaseReader(f"sqlite:///{tmp_path}")  # a folder: SQLite cannot open it
    with TestClient(create_app(settings, reader)) as client:
        for path in API:
            answer = client.get(path, headers=AUTH)
            assert answer.status_code == 503
            assert answer.json() == {"detail": "the database does not answer; try again"}
        assert client.get(API[0]).status_code == 401  # the token is still asked first
    reader.close()

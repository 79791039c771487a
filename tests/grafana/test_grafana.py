"""jobmeter.grafana and ``jobmeter grafana push`` against a fake Grafana HTTP API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from _support.fake_grafana import FakeGrafana
from jobmeter import ConfigurationError, grafana
from jobmeter.cli import app

TOKEN = "glsa_test_token"


def _board(uid: str, title: str) -> dict[str, Any]:
    """A dashboard as jobmeter's generator writes one: a datasource variable, and refs."""
    return {
        "uid": uid,
        "title": title,
        "id": 42,  # another Grafana's id: must not be sent as is
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {"name": "job", "type": "query", "datasource": {"type": "prometheus",
                                                            "uid": "${datasource}"}},
            {"name": "host", "type": "query", "datasource": {"type": "prometheus", "uid": "x"}},
        ]},
        "panels": [
            {"type": "timeseries", "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "targets": [{"expr": "up", "datasource": {"type": "prometheus", "uid": "old-uid"}}]},
            {"type": "row", "panels": [{"type": "stat", "datasource": "${DS_PROMETHEUS}"}]},
            {"type": "text", "datasource": {"type": "grafana", "uid": "grafana"}},
        ],
    }  # fmt: skip


@pytest.fixture
def boards(tmp_path: Path) -> Path:
    folder = tmp_path / "dashboards"
    folder.mkdir()
    for uid, title in (("jobmeter-jobs", "Jobs"), ("jobmeter-host", "Host")):
        (folder / f"{uid}.json").write_text(json.dumps(_board(uid, title)))
    (folder / "notes.txt").write_text("not a dashboard")
    return folder


@pytest.fixture
def fake() -> Iterator[FakeGrafana]:
    with FakeGrafana(token=TOKEN) as server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, fake: FakeGrafana) -> FakeGrafana:
    for name in ("GRAFANA_USER", "GRAFANA_PASSWORD", "GRAFANA_ORG_ID", "GRAFANA_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GRAFANA_URL", fake.url)
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    return fake


def _push(boards: Path, prometheus: str = "http://prometheus:9090") -> list[grafana.Change]:
    source = grafana.ensure_datasource(prometheus)
    loaded = grafana.load_dashboards(boards)
    return [source, *grafana.push_dashboards(loaded, datasource_uid=source.uid)]


def test_push_creates_datasource_folder_and_dashboards(env: FakeGrafana, boards: Path) -> None:
    """The datasource, the folder and each dashboard arrive with the payloads Grafana needs."""
    changes = _push(boards)
    assert [(c.kind, c.uid, c.action) for c in changes] == [
        ("datasource", "jobmeter-prometheus", "created"),
        ("folder", changes[1].uid, "created"),
        ("dashboard", "jobmeter-host", "created"),
        ("dashboard", "jobmeter-jobs", "created"),
    ]
    source = env.datasources["jobmeter-prometheus"]
    assert (source["name"], source["type"], source["access"], source["url"]) == (
        "Prometheus", "prometheus", "proxy", "http://prometheus:9090")  # fmt: skip
    [folder] = env.folders.values()
    assert folder["title"] == "jobmeter"
    assert folder["uid"] == changes[1].uid
    saved = env.dashboards["jobmeter-jobs"]
    assert saved["folderUid"] == folder["uid"]
    assert saved["overwrite"] is True
    board = saved["dashboard"]
    assert board["title"] == "Jobs"
    assert board["version"] == 1
    variable = board["templating"]["list"][0]
    assert variable["current"]["value"] == "jobmeter-prometheus"
    assert board["templating"]["list"][1]["datasource"]["uid"] == "${datasource}"
    assert board["templating"]["list"][2]["datasource"]["uid"] == "jobmeter-prometheus"
    timeseries, row, text = board["panels"]
    assert timeseries["datasource"]["uid"] == "${datasource}"  # follows the variable
    assert timeseries["targets"][0]["datasource"]["uid"] == "jobmeter-prometheus"
    assert row["panels"][0]["datasource"] == {"type": "prometheus", "uid": "jobmeter-prometheus"}
    assert text["datasource"]["uid"] == "grafana"  # not a Prometheus reference
    assert changes[3].url == f"{env.url}/d/jobmeter-jobs/jobs"
    assert changes[3].version == 1
    [posted] = [b for m, p, b in env.requests if p == "/api/dashboards/db"][-1:]
    assert posted["dashboard"]["id"] is None
    assert posted["message"] == "jobmeter grafana push"


def test_second_push_updates_in_place(env: FakeGrafana, boards: Path) -> None:
    """Pushing again finds the folder and datasource, and bumps each dashboard's version."""
    _push(boards)
    again = _push(boards, prometheus="http://prom2:9090")
    assert [c.action for c in again] == ["updated", "found", "updated", "updated"]
    assert len(env.datasources) == 1
    assert len(env.folders) == 1
    assert len(env.dashboards) == 2
    source = env.datasources["jobmeter-prometheus"]
    assert source["url"] == "http://prom2:9090"
    assert source["version"] == 2
    assert env.dashboards["jobmeter-host"]["dashboard"]["version"] == 2
    assert again[2].version == 2


def test_datasource_found_by_name_keeps_its_uid(env: FakeGrafana, boards: Path) -> None:
    """A "Prometheus" datasource made by hand is updated, and the dashboards point at it."""
    handmade = {"uid": "handmade", "name": "Prometheus", "type": "prometheus", "url": "x"}
    env.datasources["handmade"] = {**handmade, "access": "proxy", "id": 7, "version": 3}
    changes = _push(boards)
    assert (changes[0].uid, changes[0].action) == ("handmade", "updated")
    assert list(env.datasources) == ["handmade"]
    assert env.datasources["handmade"]["url"] == "http://prometheus:9090"
    target = env.dashboards["jobmeter-jobs"]["dashboard"]["panels"][0]["targets"][0]
    assert target["datasource"]["uid"] == "handmade"


def test_basic_auth_and_credentials_in_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """GRAFANA_USER/PASSWORD work, and a password in the URL never shows in the URL kept."""
    with FakeGrafana(token=TOKEN, basic=("admin", "s3cret")) as server:
        monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
        host = server.url.removeprefix("http://")
        settings = grafana.GrafanaSettings.from_env(url=f"http://admin:s3cret@{host}/")
        assert settings.url == server.url
        assert settings.user == "admin"
        assert grafana.ensure_datasource("http://p:9090", settings=settings).action == "created"
        env = {"GRAFANA_URL": server.url, "GRAFANA_USER": "admin", "GRAFANA_PASSWORD": "s3cret"}
        basic = grafana.GrafanaSettings.from_env(environ=env)
        assert grafana.ensure_datasource("http://p:9090", settings=basic).action == "updated"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "refused looking up datasource jobmeter-prometheus (401 Unauthorized"),
        (404, "answered 404 Not Found while creating datasource jobmeter-prometheus"),
        (500, "failed while looking up datasource jobmeter-prometheus (status 500"),
    ],
)
def test_grafana_errors_are_clear(env: FakeGrafana, status: int, expected: str) -> None:
    env.force_status = status
    with pytest.raises(grafana.GrafanaError) as caught:
        grafana.ensure_datasource("http://prometheus:9090")
    message = str(caught.value)
    assert expected in message
    assert env.url in message
    assert caught.value.status == status
    assert caught.value.url == env.url
    if status == 401:
        assert "set GRAFANA_TOKEN to a service-account token" in message
        assert "wrong or expired credentials" in message
    if status == 404:
        assert "is GRAFANA_URL (or --url) the base URL of Grafana" in message


def test_wrong_token_and_no_token(env: FakeGrafana, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFANA_TOKEN", "glsa_wrong")
    with pytest.raises(grafana.GrafanaError, match="wrong or expired credentials"):
        grafana.ensure_datasource("http://p:9090")
    monkeypatch.delenv("GRAFANA_TOKEN")
    with pytest.raises(grafana.GrafanaError, match=r"no credentials were given.*GRAFANA_TOKEN"):
        grafana.ensure_datasource("http://p:9090")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("GRAFANA_URL", url)
    with pytest.raises(grafana.GrafanaError) as caught:
        grafana.ensure_datasource("http://p:9090")
    assert str(caught.value).startswith(f"cannot reach Grafana at {url} while looking up")
    assert "connection refused; is Grafana running there? Set GRAFANA_URL" in str(caught.value)
    assert caught.value.status is None


def test_timeout_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    from _support.hanging_server import HangingTcpServer

    with HangingTcpServer() as hung:
        settings = grafana.GrafanaSettings.from_env(url=hung.endpoint, timeout=0.3)
        with pytest.raises(grafana.GrafanaError, match=r"did not answer within 0.3 s while"):
            grafana.ensure_datasource("http://p:9090", settings=settings)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GRAFANA_URL": "localhost:3000"}, "GRAFANA_URL='localhost:3000' is invalid"),
        ({"GRAFANA_TIMEOUT": "soon"}, "GRAFANA_TIMEOUT='soon' is invalid"),
        ({"GRAFANA_ORG_ID": "0"}, "GRAFANA_ORG_ID='0' is invalid"),
        ({"GRAFANA_USER": "admin"}, "GRAFANA_PASSWORD=None is invalid"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        grafana.GrafanaSettings.from_env(environ=env)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"title": "No uid"}, "has no 'uid': a non-empty string is required"),
        ({"uid": "x"}, "has no 'title'"),
        ("[1, 2]", "holds no JSON object"),
        ("{oops", "is not readable JSON"),
        ({"uid": "u" * 41, "title": "Long"}, "longer than 40 characters"),
    ],
)
def test_bad_dashboard_file_is_named(tmp_path: Path, content: Any, problem: str) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(grafana.GrafanaError) as caught:
        grafana.load_dashboards(tmp_path)
    assert str(bad) in str(caught.value)
    assert problem in str(caught.value)


def test_load_dashboards_shapes_and_duplicates(tmp_path: Path) -> None:
    """Export files ({"dashboard": ...}) load; a repeated uid and an empty dir are errors."""
    with pytest.raises(grafana.GrafanaError, match=r"no \*\.json dashboard files"):
        grafana.load_dashboards(tmp_path)
    with pytest.raises(grafana.GrafanaError, match="does not exist"):
        grafana.load_dashboards(tmp_path / "missing")
    (tmp_path / "a.json").write_text(json.dumps({"dashboard": _board("same", "A"), "meta": {}}))
    [loaded] = grafana.load_dashboards(tmp_path)
    assert (loaded.uid, loaded.title, loaded.path.name) == ("same", "A", "a.json")
    (tmp_path / "b.json").write_text(json.dumps(_board("same", "B")))
    with pytest.raises(grafana.GrafanaError, match=r"a\.json and .*b\.json share uid 'same'"):
        grafana.load_dashboards(tmp_path)


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["grafana", "push", *args])


def test_cli_push_json(env: FakeGrafana, boards: Path) -> None:
    result = _cli("--dashboards", str(boards), "--prometheus-url", "http://p:9090", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["grafana"] == env.url
    assert [(c["kind"], c["action"]) for c in data["changes"]] == [
        ("datasource", "created"), ("folder", "created"),
        ("dashboard", "created"), ("dashboard", "created"),
    ]  # fmt: skip
    assert set(data["changes"][2]) == {"kind", "uid", "title", "action", "url", "version"}
    assert env.datasources["jobmeter-prometheus"]["url"] == "http://p:9090"


def test_cli_push_table_with_options(fake: FakeGrafana, boards: Path) -> None:
    """--url, --token and --folder win over the environment."""
    args = ["--url", fake.url, "--token", TOKEN, "--folder", "Ops", "--dashboards", str(boards)]
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    assert "jobmeter-jobs" in result.stdout
    assert "created" in result.stdout
    assert [f["title"] for f in fake.folders.values()] == ["Ops"]


@pytest.mark.parametrize("status", [401, 404, 500])
def test_cli_errors_exit_2(env: FakeGrafana, boards: Path, status: int) -> None:
    env.force_status = status
    result = _cli("--dashboards", str(boards))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"jobmeter: Grafana at {env.url} ")
    assert "Traceback" not in result.output


def test_cli_connection_refused_and_bad_file_exit_2(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"title": "No uid"}))
    result = _cli("--dashboards", str(tmp_path), "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "x.json has no 'uid'" in result.stderr
    (tmp_path / "x.json").write_text(json.dumps(_board("ok", "OK")))
    url = f"http://127.0.0.1:{_closed_port()}"
    result = _cli("--dashboards", str(tmp_path), "--url", url)
    assert result.exit_code == 2
    assert f"cannot reach Grafana at {url}" in result.stderr


def test_cli_does_not_import_grafana_client() -> None:
    """``jobmeter report`` and friends start without grafana-client or jobmeter.grafana."""
    script = textwrap.dedent(
        """
        import sys
        import jobmeter.cli
        print(sorted(m for m in ("grafana_client", "jobmeter.grafana") if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr

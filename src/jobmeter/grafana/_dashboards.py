"""The datasource and the dashboards, pushed through the Grafana HTTP API."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jobmeter.grafana._client import (
    DATASOURCE_UID,
    Api,
    Change,
    Dashboard,
    GrafanaError,
    GrafanaSettings,
)

EDIT = "/connections/datasources/edit/"  # a datasource's page in Grafana 10 and later


def ensure_datasource(
    prometheus_url: str,
    name: str = "Prometheus",
    uid: str = DATASOURCE_UID,
    *,
    settings: GrafanaSettings | None = None,
) -> Change:
    """Create the Prometheus datasource, or update the one with this uid (or name) in place.

    Args:
        prometheus_url: the URL Grafana's server reaches Prometheus at.
        name: the datasource's name.
        uid: the datasource's uid, which the dashboards refer to.
        settings: where Grafana is; default ``GrafanaSettings.from_env()``.

    Returns:
        The change; its ``uid`` is the one to pass to ``push_dashboards`` (a datasource found
        by name keeps its own uid).

    Raises:
        GrafanaError: Grafana could not be reached or refused the request.
    """
    api = Api(settings)
    body: dict[str, Any] = {
        "name": name,
        "uid": uid,
        "type": "prometheus",
        "access": "proxy",  # Grafana's server queries Prometheus, not the browser
        "url": prometheus_url,
        "jsonData": {"httpMethod": "POST"},
    }
    found = api.call(
        f"looking up datasource {uid}",
        "datasource.get_datasource_by_uid",
        quote(uid, safe=""),
        missing_ok=True,
    ) or api.call(
        f"looking up datasource {name!r}",
        "datasource.get_datasource_by_name",
        quote(name, safe=""),
        missing_ok=True,
    )
    if found is None:
        api.call(f"creating datasource {uid}", "datasource.create_datasource", body)
        return Change("datasource", uid, name, "created", _link(api, f"{EDIT}{uid}"))
    kept = found.get("uid") or uid  # found by name: keep its uid, dashboards may use it
    options = {**(found.get("jsonData") or {}), **body["jsonData"]}
    merged = {**found, **body, "uid": kept, "jsonData": options}
    api.call(
        f"updating datasource {kept}",
        "datasource.update_datasource_by_uid",
        quote(kept, safe=""),
        merged,
    )
    return Change("datasource", kept, name, "updated", _link(api, f"{EDIT}{kept}"))


def load_dashboards(directory: str | os.PathLike[str]) -> list[Dashboard]:
    """Read every ``*.json`` dashboard in a directory, sorted by file name.

    A file may hold the dashboard model itself or Grafana's export shape
    ``{"dashboard": {...}, "meta": {...}}``.

    Raises:
        GrafanaError: the directory has no dashboards, or a file is not JSON, has no
            ``uid`` or ``title``, or repeats another file's uid (the message names the file).
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise GrafanaError(f"dashboards directory {str(folder)!r} does not exist")
    boards: dict[str, Dashboard] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            model = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise GrafanaError(f"dashboard file {path} is not readable JSON: {error}") from None
        if isinstance(model, dict) and isinstance(model.get("dashboard"), dict):
            model = model["dashboard"]
        if not isinstance(model, dict):
            raise GrafanaError(f"dashboard file {path} holds no JSON object (a dashboard model)")
        for key in ("uid", "title"):
            if not isinstance(model.get(key), str) or not model[key].strip():
                raise GrafanaError(
                    f"dashboard file {path} has no {key!r}: a non-empty string is required"
                )
        uid = model["uid"]
        if len(uid) > 40:  # Grafana's limit
            raise GrafanaError(f"dashboard file {path}: uid {uid!r} is longer than 40 characters")
        if uid in boards:
            raise GrafanaError(f"dashboard files {boards[uid].path} and {path} share uid {uid!r}")
        boards[uid] = Dashboard(uid, model["title"], path, model)
    if not boards:
        raise GrafanaError(f"no *.json dashboard files in {str(folder)!r}")
    return list(boards.values())


def point_at_datasource(model: Mapping[str, Any], datasource_uid: str) -> dict[str, Any]:
    """A copy of a dashboard model whose Prometheus references use ``datasource_uid``.

    The datasource template variables get it as their current value; panel and query
    references that name a concrete datasource (a uid, a name, or an import input such as
    ``${DS_PROMETHEUS}``) get it as their uid. References to the dashboard's own template
    variables (``${datasource}``) stay, since they follow the variable.
    """
    board = copy.deepcopy(dict(model))
    variables = {v.get("name") for v in board.get("templating", {}).get("list", [])}
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") == "datasource" and variable.get("query") == "prometheus":
            variable["current"] = {"selected": True, "text": datasource_uid,
                                   "value": datasource_uid}  # fmt: skip
    own = {f"${name}" for name in variables} | {f"${{{name}}}" for name in variables}

    def concrete(ref: object) -> bool:
        return isinstance(ref, str) and ref not in own and not ref.startswith("-- ")

    def walk(node: Any) -> None:
        children: Iterable[Any] = node.values() if isinstance(node, dict) else node
        if isinstance(node, dict) and "datasource" in node:
            ref = node["datasource"]
            if isinstance(ref, dict) and ref.get("type", "prometheus") == "prometheus":
                if concrete(ref.get("uid")):
                    ref["uid"] = datasource_uid
            elif concrete(ref):
                node["datasource"] = {"type": "prometheus", "uid": datasource_uid}
        for child in children:
            if isinstance(child, dict | list):
                walk(child)

    for key in ("panels", "rows", "templating", "annotations"):
        if key in board:
            walk(board[key])
    return board


def _ensure_folder(api: Api, title: str) -> Change:
    folders = api.call("listing folders", "folder.get_all_folders")
    for folder in folders:
        if isinstance(folder, dict) and folder.get("title") == title:
            return Change("folder", folder["uid"], title, "found", _link(api, folder.get("url")))
    made = api.call(f"creating folder {title!r}", "folder.create_folder", title)
    return Change("folder", made["uid"], title, "created", _link(api, made.get("url")))


def _link(api: Api, path: object) -> str | None:
    return f"{api.settings.url}{path}" if isinstance(path, str) and path else None


def push_dashboards(
    dashboards: Iterable[Dashboard],
    folder: str = "jobmeter",
    datasource_uid: str = DATASOURCE_UID,
    *,
    settings: GrafanaSettings | None = None,
) -> list[Change]:
    """Upload dashboards into a folder, replacing the ones with the same uid.

    Args:
        dashboards: what ``load_dashboards`` returned.
        folder: title of the folder; created when no folder has it.
        datasource_uid: the Prometheus datasource the dashboards should query
            (see ``point_at_datasource``).
        settings: where Grafana is; default ``GrafanaSettings.from_env()``.

    Returns:
        The folder's change, then one per dashboard (``created`` or ``updated``, new version).

    Raises:
        GrafanaError: Grafana could not be reached or refused a request.
    """
    api = Api(settings)
    place = _ensure_folder(api, folder)
    changes = [place]
    for board in dashboards:
        model = point_at_datasource(board.model, datasource_uid)
        model["id"] = None  # keyed by uid: another Grafana's numeric id means nothing here
        uid = quote(board.uid, safe="")
        before = api.call(
            f"looking up dashboard {board.uid}",
            "dashboard.get_dashboard",
            uid,
            missing_ok=True,
        )
        payload = {"dashboard": model, "folderUid": place.uid, "overwrite": True,
                   "message": "jobmeter grafana push"}  # fmt: skip
        saved = api.call(
            f"saving dashboard {board.uid} from {board.path.name}",
            "dashboard.update_dashboard",
            payload,
        )
        changes.append(Change("dashboard", saved.get("uid", board.uid), board.title,
                              "created" if before is None else "updated",
                              _link(api, saved.get("url")), saved.get("version")))  # fmt: skip
    return changes

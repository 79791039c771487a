"""A small real Grafana HTTP API on a loopback port: the endpoints jobmeter.grafana uses.

State lives in memory. Requests are checked as Grafana checks them (credentials, required
fields, uniqueness, folder existence, overwrite), and answered with Grafana's status codes
and JSON bodies (Grafana's HTTP API docs: data source, folder and dashboard APIs).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

FORCED = {401: "Unauthorized", 404: "Not found", 500: "Internal Server Error"}


class FakeGrafana:
    """Grafana's datasource, folder, dashboard and health endpoints, in a thread.

    Args:
        token: the service-account token every request must carry (``Bearer``).
        basic: a (user, password) pair accepted as basic auth too.
    """

    def __init__(self, token: str = "glsa_test_token", basic: tuple[str, str] | None = None):
        self.token = token
        self.basic = basic
        self.force_status: int | None = None  # answer every request with 401, 404 or 500
        self.datasources: dict[str, dict[str, Any]] = {}  # by uid
        self.folders: dict[str, dict[str, Any]] = {}  # by uid
        self.dashboards: dict[str, dict[str, Any]] = {}  # by uid: {"dashboard", "folderUid"}
        self.requests: list[tuple[str, str, Any]] = []  # method, path, JSON body
        self._ids = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (valid inside the ``with`` block)."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeGrafana:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PUT(self) -> None:
                fake._handle(self, "PUT")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll: shutdown() waits for it at the end of every test.
        serve = partial(self._server.serve_forever, poll_interval=0.02)
        threading.Thread(target=serve, name="fake-grafana", daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def _authorized(self, header: str | None) -> bool:
        if header == f"Bearer {self.token}":
            return True
        if self.basic and header and header.startswith("Basic "):
            return base64.b64decode(header[6:]).decode() == ":".join(self.basic)
        return False

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            status, answer = 400, {"message": "bad request data"}
        else:
            path = urlsplit(request.path).path
            with self._lock:
                self.requests.append((method, path, body))
                if self.force_status:
                    status, answer = self.force_status, {"message": FORCED[self.force_status]}
                elif not self._authorized(request.headers.get("Authorization")):
                    status, answer = 401, {"message": "Unauthorized"}
                else:
                    status, answer = self._route(method, path, body)
        data = json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        routes: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
            ("GET", r"/api/health", lambda: (200, {"database": "ok", "version": "11.3.0"})),
            ("GET", r"/api/datasources/uid/([^/]+)", self._get_datasource_uid),
            ("GET", r"/api/datasources/name/([^/]+)", self._get_datasource_name),
            ("POST", r"/api/datasources", lambda: self._add_datasource(body)),
            ("PUT", r"/api/datasources/uid/([^/]+)", lambda uid: self._put_datasource(uid, body)),
            ("GET", r"/api/folders", lambda: (200, [_hit(f) for f in self.folders.values()])),
            ("POST", r"/api/folders", lambda: self._add_folder(body)),
            ("POST", r"/api/dashboards/db", lambda: self._save_dashboard(body)),
            ("GET", r"/api/dashboards/uid/([^/]+)", self._get_dashboard),
        ]  # fmt: skip
        for verb, pattern, action in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return action(*(unquote(g) for g in match.groups()))
        return 404, {"message": "Not found"}

    def _get_datasource_uid(self, uid: str) -> tuple[int, Any]:
        if uid in self.datasources:
            return 200, self.datasources[uid]
        return 404, {"message": "Data source not found"}

    def _get_datasource_name(self, name: str) -> tuple[int, Any]:
        for source in self.datasources.values():
            if source["name"] == name:
                return 200, source
        return 404, {"message": "Data source not found"}

    def _add_datasource(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not body.get("name") or not body.get("type"):
            return 400, {"message": "bad request data"}
        if any(s["name"] == body["name"] for s in self.datasources.values()):
            return 409, {"message": "data source with the same name already exists"}
        uid = body.get("uid") or f"ds{self._ids + 1}"
        if uid in self.datasources:
            return 409, {"message": "data source with the same uid already exists"}
        source = {**body, "id": self._next_id(), "uid": uid, "orgId": 1, "version": 1,
                  "readOnly": False}  # fmt: skip
        self.datasources[uid] = source
        return 200, {"datasource": source, "id": source["id"], "message": "Datasource added",
                     "name": source["name"]}  # fmt: skip

    def _put_datasource(self, uid: str, body: Any) -> tuple[int, Any]:
        old = self.datasources.get(uid)
        if old is None:
            return 404, {"message": "Data source not found"}
        if not isinstance(body, dict) or not body.get("name") or not body.get("type"):
            return 400, {"message": "bad request data"}
        if body.get("version") not in (None, old["version"]):
            return 409, {"message": "Datasource has already been updated by someone else"}
        if any(s["name"] == body["name"] and u != uid for u, s in self.datasources.items()):
            return 409, {"message": "data source with the same name already exists"}
        source = {**body, "id": old["id"], "uid": uid, "orgId": 1, "version": old["version"] + 1}
        self.datasources[uid] = source
        return 200, {"datasource": source, "id": source["id"], "message": "Datasource updated",
                     "name": source["name"]}  # fmt: skip

    def _add_folder(self, body: Any) -> tuple[int, Any]:
        title = body.get("title") if isinstance(body, dict) else None
        if not title:
            return 400, {"message": "folder title cannot be empty"}
        if any(f["title"] == title for f in self.folders.values()):
            return 409, {"message": "a folder with the same name already exists"}
        uid = body.get("uid") or f"f{self._ids + 1:08d}"
        if uid in self.folders or uid in self.dashboards:
            return 409, {"message": "a folder with the same uid already exists"}
        folder = {"id": self._next_id(), "uid": uid, "title": title, "version": 1,
                  "url": f"/dashboards/f/{uid}/{_slug(title)}"}  # fmt: skip
        self.folders[uid] = folder
        return 200, folder

    def _save_dashboard(self, body: Any) -> tuple[int, Any]:
        board = body.get("dashboard") if isinstance(body, dict) else None
        if not isinstance(board, dict):
            return 400, {"message": "bad request data"}
        if not str(board.get("title") or "").strip():
            return 400, {"message": "Dashboard title cannot be empty", "status": "empty-name"}
        uid = board.get("uid")
        if not uid:  # Grafana would make one up; jobmeter must always send its own
            return 400, {"message": "fake Grafana: dashboard without uid"}
        folder_uid = body.get("folderUid") or ""
        if folder_uid and folder_uid not in self.folders:
            return 400, {"message": "folder not found", "status": "not-found"}
        old = self.dashboards.get(uid)
        if board.get("id") is not None and (old is None or old["dashboard"]["id"] != board["id"]):
            return 404, {"message": "Dashboard not found", "status": "not-found"}
        if old and not body.get("overwrite"):
            return 412, {"message": "The dashboard has been changed by someone else",
                         "status": "version-mismatch"}  # fmt: skip
        version = old["dashboard"]["version"] + 1 if old else 1
        ident = old["dashboard"]["id"] if old else self._next_id()
        stored = {**board, "id": ident, "version": version}
        self.dashboards[uid] = {
            "dashboard": stored,
            "folderUid": folder_uid,
            "overwrite": body.get("overwrite"),
            "message": body.get("message"),
        }
        slug = _slug(board["title"])
        return 200, {"id": ident, "uid": uid, "url": f"/d/{uid}/{slug}", "status": "success",
                     "version": version, "slug": slug, "folderUid": folder_uid}  # fmt: skip

    def _get_dashboard(self, uid: str) -> tuple[int, Any]:
        saved = self.dashboards.get(uid)
        if saved is None:
            return 404, {"message": "Dashboard not found"}
        board = saved["dashboard"]
        slug = _slug(board["title"])
        meta = {"folderUid": saved["folderUid"], "version": board["version"],
                "url": f"/d/{uid}/{slug}", "slug": slug}  # fmt: skip
        return 200, {"dashboard": board, "meta": meta}


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _hit(folder: dict[str, Any]) -> dict[str, Any]:
    """A folder as GET /api/folders lists it."""
    return {"id": folder["id"], "uid": folder["uid"], "title": folder["title"]}

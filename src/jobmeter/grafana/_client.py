"""Grafana settings, errors and the HTTP client behind jobmeter.grafana (docs/grafana.md)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jobmeter._core.errors import ConfigurationError

URL_ENV = "GRAFANA_URL"
TOKEN_ENV = "GRAFANA_TOKEN"
USER_ENV = "GRAFANA_USER"
PASSWORD_ENV = "GRAFANA_PASSWORD"
ORG_ENV = "GRAFANA_ORG_ID"
TIMEOUT_ENV = "GRAFANA_TIMEOUT"
DEFAULT_URL = "http://localhost:3000"
DEFAULT_TIMEOUT = 10.0
DATASOURCE_UID = "jobmeter-prometheus"
CREDENTIALS = f"set {TOKEN_ENV} to a service-account token (or {USER_ENV} and {PASSWORD_ENV})"


class GrafanaError(RuntimeError):
    """Grafana could not be reached, refused a request, or a dashboard file is unusable.

    Attributes:
        url: the Grafana URL (without credentials), or None for a local file problem.
        status: the HTTP status Grafana answered, or None when there was no answer.
    """

    def __init__(self, message: str, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


@dataclass(frozen=True)
class GrafanaSettings:
    """Where Grafana is and how to log in.

    Attributes:
        url: base URL of Grafana, with its sub-path if it is served under one.
        token: a service-account token (sent as ``Authorization: Bearer``).
        user: basic-auth user, used when there is no token.
        password: basic-auth password.
        org_id: the organization to work in (``X-Grafana-Org-Id``); None: the user's own.
        timeout: seconds one request may take.
    """

    url: str = DEFAULT_URL
    token: str | None = None
    user: str | None = None
    password: str | None = None
    org_id: int | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(
        cls,
        url: str | None = None,
        token: str | None = None,
        org_id: int | None = None,
        timeout: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> GrafanaSettings:
        """Settings from the arguments, else ``GRAFANA_*`` variables, else the defaults.

        Raises:
            ConfigurationError: a value is invalid (the message names the variable).
        """
        env = os.environ if environ is None else environ
        url = url or env.get(URL_ENV) or DEFAULT_URL
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(URL_ENV, url, "an http:// or https:// URL with a host")
        user, password = env.get(USER_ENV) or None, env.get(PASSWORD_ENV) or None
        if parts.username:  # http://user:password@host: credentials out of the URL we show
            user, password = parts.username, parts.password
            url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        if user and password is None:
            raise ConfigurationError(PASSWORD_ENV, None, f"a password, given with {USER_ENV}")
        return cls(
            url=url.rstrip("/"),
            token=token or env.get(TOKEN_ENV) or None,
            user=user,
            password=password,
            org_id=org_id if org_id is not None else _number(env, ORG_ENV, int),
            timeout=timeout if timeout is not None else _number(env, TIMEOUT_ENV, float),
        )


def _number(env: Mapping[str, str], name: str, kind: Callable[[str], Any]) -> Any:
    raw = env.get(name)
    if not raw:
        return None if kind is int else DEFAULT_TIMEOUT
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value <= 0:
        accepted = "a positive integer" if kind is int else "a number of seconds, more than 0"
        raise ConfigurationError(name, raw, accepted)
    return value


@dataclass(frozen=True)
class Dashboard:
    """One dashboard file: its uid, title, where it came from and its JSON model."""

    uid: str
    title: str
    path: Path
    model: dict[str, Any]


@dataclass(frozen=True)
class Change:
    """What one push did to one Grafana object.

    Attributes:
        kind: ``datasource``, ``folder`` or ``dashboard``.
        uid: the object's uid in Grafana.
        title: its name or title.
        action: ``created`` or ``updated`` (``found`` for a folder that existed).
        url: where to see it in Grafana, or None.
        version: the version Grafana answered (dashboards), or None.
    """

    kind: str
    uid: str
    title: str
    action: str
    url: str | None = None
    version: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The change as a JSON-ready dict (the keys of ``jobmeter grafana push --json``)."""
        return asdict(self)


class Api:
    """grafana_client's GrafanaApi, with every failure turned into a GrafanaError."""

    def __init__(self, settings: GrafanaSettings | None) -> None:
        self.settings = settings or GrafanaSettings.from_env()
        try:
            from grafana_client.api import GrafanaApi
        except ImportError:
            raise GrafanaError(
                "the Grafana commands need grafana-client: pip install 'jobmeter[grafana]'"
            ) from None
        parts = urlsplit(self.settings.url)
        auth: Any = self.settings.token
        if auth is None and self.settings.user:
            auth = (self.settings.user, self.settings.password or "")
        prefix = parts.path.strip("/")
        self.api: Any = GrafanaApi(  # untyped library: calls go through Any
            auth,
            host=parts.hostname,
            port=parts.port,
            url_path_prefix=f"{prefix}/" if prefix else "",
            protocol=parts.scheme,
            timeout=self.settings.timeout,
            organization_id=self.settings.org_id,
        )

    def call(self, what: str, method: str, *args: Any, missing_ok: bool = False) -> Any:
        """GrafanaApi's ``method`` (``"folder.create_folder"``) with ``args``.

        None for a 404 when ``missing_ok``; any failure is a GrafanaError that says ``what``
        was being done.
        """
        from grafana_client.client import GrafanaException, GrafanaTimeoutError

        url = self.settings.url
        try:
            element, name = method.split(".")
            answer = getattr(getattr(self.api, element), name)(*args)
        except GrafanaTimeoutError:
            raise GrafanaError(
                f"Grafana at {url} did not answer within {self.settings.timeout:g} s while "
                f"{what} (set {TIMEOUT_ENV} to wait longer)",
                url,
            ) from None
        except GrafanaException as error:
            status = error.status_code or None
            if status == 404 and missing_ok:
                return None
            raise GrafanaError(self.explain(what, status, error), url, status) from None
        except (OSError, ValueError) as error:  # niquests' connection errors, bad JSON
            reason = "connection refused" if "refused" in str(error).lower() else str(error)
            raise GrafanaError(
                f"cannot reach Grafana at {url} while {what}: {reason}; "
                f"is Grafana running there? Set {URL_ENV} (or --url)",
                url,
            ) from None
        if not isinstance(answer, dict | list):
            raise GrafanaError(f"{url} did not answer like Grafana while {what} (no JSON)", url)
        return answer

    def explain(self, what: str, status: int | None, error: Any) -> str:
        """The message for Grafana's answer ``status`` to a request."""
        url = self.settings.url
        response = error.response
        detail = (response.get("message") if isinstance(response, dict) else None) or error.message
        if status in (401, 403):
            given = self.settings.token or self.settings.user
            cause = "no credentials were given" if not given else "wrong or expired credentials"
            if status == 403:
                cause = f"{detail}; the token's service account needs the Editor or Admin role"
            code = "401 Unauthorized" if status == 401 else "403 Forbidden"
            return f"Grafana at {url} refused {what} ({code}: {cause}): {CREDENTIALS}"
        if status == 404:
            return (
                f"Grafana at {url} answered 404 Not Found while {what}: is {URL_ENV} (or --url) "
                "the base URL of Grafana, with its sub-path if it has one?"
            )
        if status is None:
            return f"cannot reach Grafana at {url} while {what}: {detail}"
        if status >= 500:
            return f"Grafana at {url} failed while {what} (status {status}: {detail}); see its log"
        return f"Grafana at {url} rejected {what} (status {status}: {detail})"

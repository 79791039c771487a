"""The documentation site builds strictly, and every page is in its nav (mkdocs.yml)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIG = ROOT / "mkdocs.yml"

# Pages under docs/ that are deliberately not in the nav, with the reason.
NOT_IN_NAV: dict[str, str] = {}


def _nav_pages(node: object) -> Iterator[str]:
    """Every page path of a nav tree (lists of "Title: page.md" or "Title: [...]" entries)."""
    if isinstance(node, str):
        if "://" not in node:  # external links are not pages
            yield node
    elif isinstance(node, list):
        for item in node:
            yield from _nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _nav_pages(value)


def _config() -> dict[str, object]:
    loaded = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_strict_build(tmp_path: Path) -> None:
    """`mkdocs build --strict` succeeds: no broken link, anchor or nav entry, CLI page included."""
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(CONFIG),
         "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    assert (site / "index.html").is_file()
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    for command in ("info", "run", "version", "runs", "report", "compare", "advise", "export",
                    "gc", "plot", "grafana push"):  # fmt: skip
        assert f"jobmeter {command}" in cli, f"the CLI reference lacks `jobmeter {command}`"
    assert "--keep" in cli, "the CLI reference lists no options"


def test_every_page_is_in_the_nav() -> None:
    """No page under docs/ is left out of the nav, except those listed with a reason."""
    in_nav = set(_nav_pages(_config()["nav"]))
    pages = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    orphans = sorted(pages - in_nav - set(NOT_IN_NAV))
    assert not orphans, f"pages missing from the nav of mkdocs.yml: {orphans}"


def test_every_nav_entry_exists() -> None:
    """Every page the nav names is a file under docs/, named once."""
    entries = list(_nav_pages(_config()["nav"]))
    missing = sorted(page for page in entries if not (DOCS / page).is_file())
    assert not missing, f"nav entries of mkdocs.yml without a page under docs/: {missing}"
    duplicated = sorted({page for page in entries if entries.count(page) > 1})
    assert not duplicated, f"pages named twice in the nav: {duplicated}"

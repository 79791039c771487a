"""The click command of the ``jobmeter`` CLI, for the CLI reference page (docs/cli.md).

mkdocs-click documents a click command found as ``module:attribute``. The CLI is a
typer app, and typer builds its click command only when asked
(``typer.main.get_command``), so no importable attribute of ``jobmeter.cli`` holds one.
This file is an MkDocs hook (``hooks:`` in mkdocs.yml): MkDocs loads it before it
renders any page, and it registers itself as the module ``jobmeter_docs_cli`` whose
``command`` attribute docs/cli.md names. It is kept out of the built site
(``exclude_docs``).
"""

from __future__ import annotations

import sys

import typer.main

from jobmeter.cli import app

command = typer.main.get_command(app)

sys.modules.setdefault("jobmeter_docs_cli", sys.modules[__name__])

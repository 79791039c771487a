"""Every fenced ```python block of docs/**/*.md runs, each in a fresh interpreter.

A block runs as ``sys.executable -c CODE`` in an empty temporary directory, with
no ``OTEL_*``/``JOBMETER_*`` variables of the caller and these instead:
``JOBMETER_RUN_DIR=<tmp>/.jobmeter/runs``; the default exporter, Prometheus,
on ``127.0.0.1`` and a free port (``OTEL_EXPORTER_PROMETHEUS_PORT=0``), so that
``configure()`` serves a real endpoint as it does for a reader, with no port
taken and nothing beyond loopback; an OTLP endpoint on a closed loopback port
and a short ``OTEL_METRIC_EXPORT_TIMEOUT`` (an example that exports to a
collector proves that a collector that is down does not fail the job, nor hold
it up). It must exit 0 within ``TIMEOUT_S``; its stderr is shown when it does not.
The examples of grafana.md talk to a fake Grafana (tests/_support/fake_grafana.py,
which checks the payloads) at ``GRAFANA_URL``, with the repository's dashboards.
The test id is the page and the block's number among the page's python blocks,
counted from 1: ``run-store.md:2`` is the second python block of run-store.md.

Markers are HTML comments (invisible on the rendered page) on the lines right
before a block's opening fence; blank lines may separate them from the fence and
from each other, nothing else may:

``<!-- docs-example: skip (reason) -->``
    Do not run the block. The reason is required (a test fails without one) and
    must say why it cannot run here: a GPU, Docker.
``<!-- docs-example: continue -->``
    The block builds on the page's previous python block: it runs after it (and
    after what that one continues), in the same interpreter.
``<!-- docs-example: setup`` ... ``-->``
    Hidden Python, the lines up to ``-->``, run just before the block (and
    before it again when a later block continues this one): it defines what the
    visible example takes as given (``load()``, a table, a file), without
    changing the example's meaning.

A ```python block that is really a shell session or output (``$ `` prompts,
``>>>``, anything that does not compile) fails: fence it as ```sh, ```console or
```text. A marker that is unknown, malformed, or not right before a python block
fails too. ```sql blocks over the run store run in DuckDB against a store that a
small ``jobmeter.Run`` made (the same markers apply; ``continue`` and ``setup``
do not), and the ``jobmeter ...`` command list of run-store.md is checked with
``--help``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from _support.fake_grafana import FakeGrafana

DOCS = Path(__file__).resolve().parent.parent / "docs"
TIMEOUT_S = 60
PYTHON_LANGS = {"python", "py", "python3"}
SQL_LANGS = {"sql"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)[^`]*$")
_MARKER_START = re.compile(r"^\s*<!--\s*docs-example\s*:(?P<rest>.*)$", re.DOTALL)
_SKIP = re.compile(r"^skip\s*\((?P<reason>.*)\)$", re.DOTALL)
_PROMPT = re.compile(r"^\s*(\$ |>>> |\.\.\. |# \$ )")


@dataclass
class Marker:
    """One ``<!-- docs-example: ... -->`` comment of a page."""

    page: str
    first: int  # 0-based line numbers
    last: int
    text: str  # what follows "docs-example:", up to "-->"
    used: bool = False


@dataclass
class Block:
    """One fenced code block of a page and the markers right before it."""

    page: str
    lang: str
    index: int  # 1-based, among the page's blocks of the same kind (python or sql)
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None = None
    cont: bool = False
    setup: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.index}"


def _markers(page: str, lines: list[str]) -> list[Marker]:
    found: list[Marker] = []
    i = 0
    while i < len(lines):
        if _MARKER_START.match(lines[i]):
            first = i
            while "-->" not in lines[i] and i + 1 < len(lines):
                i += 1
            text = "\n".join(lines[first : i + 1])
            text = _MARKER_START.match(text).group("rest")  # type: ignore[union-attr]
            found.append(Marker(page, first, i, text.split("-->", 1)[0]))
        i += 1
    return found


def _apply(block: Block, marker: Marker) -> None:
    marker.used = True
    text = marker.text
    head = text.strip()
    if head.startswith("setup") and (len(head) == 5 or head[5].isspace()):
        code = text.split("setup", 1)[1]
        first, _, rest = code.partition("\n")
        code = (first.strip() + "\n" if first.strip() else "") + textwrap.dedent(rest)
        if block.lang in SQL_LANGS:
            block.problems.append("a setup marker applies to python blocks only")
        block.setup += code.strip("\n") + "\n"
    elif head == "continue":
        if block.lang in SQL_LANGS:
            block.problems.append("a continue marker applies to python blocks only")
        block.cont = True
    elif head.startswith("skip"):
        match = _SKIP.match(head)
        reason = match.group("reason").strip() if match else ""
        if not reason:
            block.problems.append(f"skip marker without a reason: {head!r}; write skip (why)")
        block.skip = reason or "no reason given"
    else:
        block.problems.append(f"unknown docs-example marker {head!r}")


def _parse(path: Path, root: Path = DOCS) -> tuple[list[Block], list[Marker]]:
    page = path.relative_to(root).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    markers = _markers(page, lines)
    ends = {m.last: m for m in markers}
    blocks: list[Block] = []
    counts: dict[str, int] = {}
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening.group("fence"), len(opening.group("indent"))
        lang = opening.group("info").lower()
        j = i + 1
        while j < len(lines) and not re.fullmatch(
            rf"[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*", lines[j]
        ):
            j += 1
        kind = "python" if lang in PYTHON_LANGS else "sql" if lang in SQL_LANGS else None
        if kind:
            counts[kind] = counts.get(kind, 0) + 1
            body = [line[indent:] if line[:indent].isspace() else line for line in lines[i + 1 : j]]
            block = Block(page, kind, counts[kind], i + 1, "\n".join(body) + "\n")
            # The markers right before the fence, nearest last.
            attached: list[Marker] = []
            k = i - 1
            while k >= 0:
                if not lines[k].strip():
                    k -= 1
                elif k in ends:
                    attached.append(ends[k])
                    k = ends[k].first - 1
                else:
                    break
            for marker in reversed(attached):
                _apply(block, marker)
            blocks.append(block)
        i = j + 1
    return blocks, markers


def _collect() -> tuple[list[Block], list[str]]:
    blocks: list[Block] = []
    problems: list[str] = []
    for path in sorted(DOCS.rglob("*.md")):
        page_blocks, markers = _parse(path)
        blocks.extend(page_blocks)
        problems.extend(
            f"{m.page}:{m.first + 1}: docs-example marker not right before a python block"
            for m in markers
            if not m.used
        )
    for block in blocks:
        if block.lang == "python":
            _check_python(block)
    return blocks, problems


def _check_python(block: Block) -> None:
    if any(_PROMPT.match(line) for line in block.code.splitlines()):
        block.problems.append(
            "looks like a shell session or console output ($ or >>> prompts): "
            "fence it as ```sh, ```console or ```text"
        )
        return
    for what, code in (("block", block.code), ("setup", block.setup)):
        try:
            compile(code, f"{block.id} ({what})", "exec")
        except SyntaxError as error:
            block.problems.append(
                f"{what} is not Python ({error.msg}, line {error.lineno}); if it is shell "
                "or output, fence it as ```sh or ```text"
            )


BLOCKS, MARKER_PROBLEMS = _collect()
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python"]
SQL_BLOCKS = [b for b in BLOCKS if b.lang == "sql"]


def _program(block: Block) -> str:
    """The block's code, after the blocks it continues, each after its setup."""
    chain = [block]
    page_blocks = [b for b in PYTHON_BLOCKS if b.page == block.page]
    while chain[0].cont:
        position = page_blocks.index(chain[0])
        if position == 0:
            pytest.fail(f"{chain[0].id} is marked continue but is the page's first python block")
        previous = page_blocks[position - 1]
        if previous.skip is not None:
            pytest.fail(f"{chain[0].id} continues {previous.id}, which is skipped: skip it too")
        chain.insert(0, previous)
    return "\n".join(b.setup + b.code for b in chain)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OTEL_", "JOBMETER_", "GRAFANA_", "COMET_"))
    }
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        {
            "PATH": os.pathsep.join([bin_dir, env.get("PATH", "")]),
            "JOBMETER_RUN_DIR": str(tmp_path / ".jobmeter" / "runs"),
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
            "OTEL_EXPORTER_PROMETHEUS_PORT": "0",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
            "OTEL_METRIC_EXPORT_TIMEOUT": "1000",
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
    )
    return env


def _numbered(code: str) -> str:
    return "\n".join(f"{n:4} {line}" for n, line in enumerate(code.splitlines(), 1))


def test_markers_are_right_before_python_blocks() -> None:
    assert not MARKER_PROBLEMS, "\n".join(MARKER_PROBLEMS)


def test_marker_rules(tmp_path: Path) -> None:
    """The harness itself: what each marker does, and what makes a block fail."""
    page = tmp_path / "page.md"
    page.write_text(
        textwrap.dedent(
            """\
            <!-- docs-example: setup
            x = 1
            -->
            ```python
            y = x + 1
            ```

            <!-- docs-example: continue -->

            ```py
            assert y == 2
            ```
            <!-- docs-example: skip (needs a GPU) -->
            ```python
            import pynvml
            ```
            <!-- docs-example: skip -->
            ```python
            pass
            ```
            ```python
            $ jobmeter runs
            ```
            ```python
            ┏━━━━┓
            ```
            <!-- docs-example: bogus -->
            ```python
            pass
            ```
            <!-- docs-example: continue -->

            Prose between a marker and its block.
            ```sh
            echo
            ```
            """
        )
    )
    blocks, markers = _parse(page, tmp_path)
    for block in blocks:
        _check_python(block)
    assert [b.id for b in blocks] == [f"page.md:{n}" for n in range(1, 8)]
    first, second, gpu, no_reason, shell, output, bogus = blocks
    assert first.setup == "x = 1\n"
    assert not first.cont
    assert second.cont
    assert not second.setup
    assert gpu.skip == "needs a GPU"
    assert not [*first.problems, *second.problems, *gpu.problems]
    assert "without a reason" in no_reason.problems[0]
    assert "shell session" in shell.problems[0]
    assert "not Python" in output.problems[0]
    assert "unknown" in bogus.problems[0]
    lines = page.read_text().splitlines()
    stray = len(lines) - 1 - lines[::-1].index("<!-- docs-example: continue -->")
    assert [m.first for m in markers if not m.used] == [stray]


def test_docs_have_python_examples() -> None:
    assert len(PYTHON_BLOCKS) >= 10, [b.id for b in PYTHON_BLOCKS]


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.id for b in PYTHON_BLOCKS])
def test_python_example_runs(block: Block, tmp_path: Path) -> None:
    assert not block.problems, f"{block.page} line {block.line}: " + "; ".join(block.problems)
    if block.skip is not None:
        pytest.skip(f"{block.id}: {block.skip}")
    code = _program(block)
    env = _env(tmp_path)
    with contextlib.ExitStack() as stack:
        if block.page.endswith("grafana.md"):
            # Its examples talk to Grafana: a fake one that checks the payloads answers.
            grafana = stack.enter_context(FakeGrafana(token="glsa_docs_example"))
            env.update(GRAFANA_URL=grafana.url, GRAFANA_TOKEN=grafana.token)
            shutil.copytree(Path(__file__).parents[1] / "dashboards", tmp_path / "dashboards")
        done = _run_example(code, tmp_path, env, block)
    if done.returncode != 0:
        pytest.fail(
            f"{block.page} line {block.line} exited {done.returncode}\n"
            f"--- code ---\n{_numbered(code)}\n--- stderr ---\n{done.stderr}",
            pytrace=False,
        )


def _run_example(
    code: str, cwd: Path, env: dict[str, str], block: Block
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else ""
        pytest.fail(
            f"{block.page} line {block.line} ran past {TIMEOUT_S} s\n"
            f"--- code ---\n{_numbered(code)}\n--- stderr ---\n{stderr}"
        )


# A store with two finished runs of run-store.md's example, and one exported, for the SQL.
STORE_SCRIPT = """
import subprocess
import jobmeter

ops = jobmeter.MetricsCollector("etl")
for rows in (1000, 4000):
    with jobmeter.Run("nightly-etl"):
        con = jobmeter.duckdb.connect("warehouse.duckdb")
        with ops.measure("extract", {"table": "orders"}):
            con.execute(
                "CREATE OR REPLACE TABLE orders AS SELECT range AS id, range % 97 AS customer, "
                "random() * 100 AS amount FROM range(?)", [rows]
            )
        with ops.measure("aggregate", {"table": "orders"}):
            con.execute("SELECT customer, sum(amount) FROM orders GROUP BY customer").fetchall()
        con.close()
from jobmeter import store
store.compact_index()  # the SQL of deployment.md reads the index's segments
run = store.list_runs()[-1]
subprocess.run(
    ["jobmeter", "export", run.id, "--parquet", f"exports/{run.id}"], check=True
)
"""


@pytest.fixture(scope="module")
def run_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    done = subprocess.run(
        [sys.executable, "-c", STORE_SCRIPT],
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # deployment.md queries a shared store from the folder above its runs/.
    (root / "runs").symlink_to(root / ".jobmeter" / "runs")
    return root


@pytest.mark.parametrize("block", SQL_BLOCKS, ids=[b.id for b in SQL_BLOCKS])
def test_sql_example_runs(block: Block, run_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    assert not block.problems, f"{block.page} line {block.line}: " + "; ".join(block.problems)
    if block.skip is not None:
        pytest.skip(f"{block.id}: {block.skip}")
    monkeypatch.chdir(run_store)
    con = duckdb.connect()
    statements = [s for s in block.code.split(";") if re.sub(r"--[^\n]*", "", s).strip()]
    assert statements, f"{block.id} has no SQL statement"
    for statement in statements:
        rows = con.sql(statement).fetchall()
        assert rows, f"{block.id}: no rows from\n{statement}"


def _command_list() -> list[list[str]]:
    """The `jobmeter ...` lines of run-store.md's first ```sh block, as argument lists."""
    text = (DOCS / "run-store.md").read_text(encoding="utf-8")
    match = re.search(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert match, "run-store.md has no ```sh command list"
    commands = [
        line.split("#", 1)[0].split()
        for line in match.group(1).splitlines()
        if line.startswith("jobmeter ")
    ]
    assert commands, "run-store.md's command list names no jobmeter command"
    return commands


def test_run_store_commands_exist(tmp_path: Path) -> None:
    jobmeter = shutil.which("jobmeter", path=str(Path(sys.executable).parent))
    prefix = [jobmeter] if jobmeter else [sys.executable, "-m", "jobmeter"]
    for words in _command_list():
        command = words[1]
        done = subprocess.run(
            [*prefix, command, "--help"],
            cwd=tmp_path,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, f"jobmeter {command} --help: {done.stderr}"
        # Every option the list shows is one the command takes.
        for option in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", " ".join(words[2:])):
            assert option in done.stdout, f"jobmeter {command} has no {option}:\n{done.stdout}"

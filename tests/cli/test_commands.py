"""The commands over real run directories: which run RUN names, --dir, runs, gc, errors.

Runs with known ids, names, states and starts are written directly (run.json and
usage.jsonl); one run is made for real by ``jobmeter run``. Usage errors go through the
real entry point (``python -m jobmeter``): their one-line form is ``jobmeter.cli.main``'s.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pytest
import typer
from typer.testing import CliRunner, Result

from jobmeter import store
from jobmeter._version import __version__
from jobmeter.cli import app

HOUR, DAY = 3600.0, 86400.0
PNG = b"\x89PNG\r\n\x1a\n"
ID = re.compile(r"\b\d{8}T\d{6}Z-\w{6}\b")


def _write_run(root: Path, n: int, age: float, name: str, status: str = "succeeded",
               **record: Any) -> str:  # fmt: skip
    """A run that started ``age`` seconds ago, with 3 samples; its id."""
    start = time.time() - age
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start)) + f"-{n:06d}"
    (root / run_id).mkdir(parents=True)
    summary: dict[str, Any] = dict.fromkeys(store.FIGURES, 0)
    summary.update(peak_memory_source="samples (PSS of the tree)", peak_gpu_memory_bytes=None,
                   samples=3, wall_seconds=1.5)  # fmt: skip
    full = {"id": run_id, "name": name, "status": status, "start": start, "end": start + 1.5,
            "exit_code": 0 if status == "succeeded" else 1, "interval_seconds": 0.5,
            "summary": summary, **record}  # fmt: skip
    (root / run_id / "run.json").write_text(json.dumps(full))
    sample = {"pss": 2**20, "rss": 2**20, "cpu_utilization": 0.5, "processes": 1, "threads": 1}
    lines = [json.dumps({"t": start + i / 2, **sample}) + "\n" for i in range(3)]
    (root / run_id / "usage.jsonl").write_text("".join(lines))
    return run_id


def _cli(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def _json(*args: str | Path) -> Any:
    result = _cli(*args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def _parquet_ids(path: Path) -> list[Any]:
    return duckdb.execute(f"select id from '{path}'").fetchall()


def _main(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "JOBMETER_"))}
    env.update(OTEL_METRICS_EXPORTER="none", JOBMETER_RUN_DIR=str(cwd / "runs"))
    return subprocess.run([sys.executable, "-m", "jobmeter", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def _real_run(cwd: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = ("--", sys.executable, "-c", "pass")
    return _main(cwd, "run", "-q", "--no-metrics", "--name", "real", *options, *command)


class Picks(NamedTuple):
    root: Path
    ids: dict[str, str]  # old, etl, typo (not started), other, real; and old_prefix


@pytest.fixture(scope="module")
def picks(tmp_path_factory: pytest.TempPathFactory) -> Picks:
    """Three runs named etl (the newest did not start), one other, then a real one."""
    root = tmp_path_factory.mktemp("picks") / "runs"
    ids = {"old": _write_run(root, 1, 4 * HOUR, "etl"), "etl": _write_run(root, 2, 3 * HOUR, "etl"),
           "typo": _write_run(root, 3, 2 * HOUR, "etl", "not_started", exit_code=127),
           "other": _write_run(root, 4, HOUR, "other", "failed")}  # fmt: skip
    done = _real_run(root.parent, "--dir", str(root))
    assert done.returncode == 0, done.stderr
    (ids["real"],) = set(os.listdir(root)) - set(ids.values())
    ids["old_prefix"] = ids["old"][:11]  # to the hour: every run started in another hour
    return Picks(root, ids)


FORMS = {  # RUN as given, and the run it names
    "id": (["{old}"], "old"), "prefix": (["{old_prefix}"], "old"),
    "name": (["etl"], "etl"),  # its newest run that started, not the newer typo
    "real-id": (["{real}"], "real"), "real-name": (["real"], "real"),
    "latest": (["latest"], "real"), "--latest": (["--latest"], "real"), "nothing": ([], "real"),
}  # fmt: skip


@pytest.mark.parametrize("command", ["report", "plot", "export"])
@pytest.mark.parametrize("form", list(FORMS))
def test_each_form_names_its_run(picks: Picks, tmp_path: Path, command: str, form: str) -> None:
    given, expected = FORMS[form]
    want = picks.ids[expected]
    args = [arg.format(**picks.ids) for arg in given]
    out = tmp_path
    extra: list[str | Path] = [] if command == "report" else ["-o", out]
    data = _json(command, *args, "--dir", picks.root, *extra)
    if command == "report":
        assert data["id"] == want
        assert data["directory"] == str(picks.root / want)
    elif command == "plot":
        assert data == {"run": want, "png": str(out / f"{want}.png"), "html": None}
        assert (out / f"{want}.png").read_bytes()[:8] == PNG
    else:
        assert data["run"] == str(out / "run.parquet")
        assert _parquet_ids(out / "run.parquet") == [(want,)]


@pytest.mark.parametrize(
    ("run_a", "run_b", "want"),
    [("{old}", "latest", ("old", "real")), ("{old_prefix}", "etl", ("old", "etl")),
     ("real", "{etl}", ("real", "etl")), ("other", "{real}", ("other", "real"))],
)  # fmt: skip
def test_compare_names_both(picks: Picks, run_a: str, run_b: str, want: tuple[str, str]) -> None:
    data = _json("compare", run_a.format(**picks.ids), run_b.format(**picks.ids), "--dir",
                 picks.root)  # fmt: skip
    assert (data["a"]["id"], data["b"]["id"]) == (picks.ids[want[0]], picks.ids[want[1]])
    assert set(data["figures"]) == set(store.FIGURES)


@pytest.mark.parametrize("command", ["report", "plot", "export", "compare"])
def test_ambiguous_prefix_unknown_name_exit_2(picks: Picks, tmp_path: Path, command: str) -> None:
    prefix = os.path.commonprefix(os.listdir(picks.root))  # noqa: RUF071
    extra = {"report": [], "compare": [picks.ids["real"]]}.get(command, ["-o", str(tmp_path)])
    for ref, says in ((prefix, "is not unique"), ("nosuchjob", "matches no run")):
        args = [ref, *extra]
        result = _cli(command, *args, "--dir", picks.root, "--json")
        assert (result.exit_code, result.stdout) == (2, ""), result.stderr
        assert f"run {ref!r} {says}" in result.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", ["report", "plot", "export"])
def test_run_and_latest_together_is_exit_2(picks: Picks, tmp_path: Path, command: str) -> None:
    extra: list[str | Path] = [] if command == "report" else ["-o", tmp_path]
    result = _cli(command, "etl", "--latest", "--dir", picks.root, *extra)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "jobmeter: give RUN ('etl') or --latest, not both\n"


def test_every_command_takes_dir_as_the_runs_directory(picks: Picks) -> None:
    group: Any = typer.main.get_command(app)
    for name in ("run", "runs", "report", "compare", "advise", "export", "gc", "plot"):
        options = [p for p in group.commands[name].params if "--dir" in p.opts]
        assert [(p.opts, p.metavar) for p in options] == [(["--dir"], "DIR")], name
    ids = picks.ids
    newest_first = [ids[k] for k in ("real", "other", "typo", "etl", "old")]
    assert [row["id"] for row in _json("runs", "--dir", picks.root)] == newest_first
    assert _json("advise", "--dir", picks.root)["runs"] == [ids[k] for k in ("old", "etl", "other",
                                                                             "real")]  # fmt: skip
    dry = _json("gc", "--keep", "1", "--dry-run", "--dir", picks.root)
    assert dry == {"dry_run": True, "would_delete": [ids["old"], ids["etl"]], "kept": 3}


def test_run_o_still_works_with_a_warning_and_export_parquet_too(tmp_path: Path) -> None:
    done = _real_run(tmp_path, "-o", str(tmp_path / "old"))
    assert done.returncode == 0, done.stderr
    assert done.stderr == "jobmeter: warning: run -o/--output is now --dir (the runs directory)\n"
    (run_id,) = os.listdir(tmp_path / "old")
    assert not (tmp_path / "runs").exists()
    written = _json("export", "--parquet", tmp_path / "pq", "--dir", tmp_path / "old")
    assert written["run"] == str(tmp_path / "pq" / "run.parquet")
    assert _parquet_ids(tmp_path / "pq" / "run.parquet") == [(run_id,)]


class Listed(NamedTuple):
    root: Path
    ids: list[str]  # newest first
    states: list[str]


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Listed:
    """20 runs 5 to 195 minutes old (a, b, a, ...), then runs 1, 10 and 20 days old."""
    root = tmp_path_factory.mktemp("listed") / "runs"
    states = [{3: "failed", 5: "killed", 7: "interrupted"}.get(k, "succeeded") for k in range(20)]
    ids = [_write_run(root, k, (k + 1) * 600 - 300, "ab"[k % 2], states[k]) for k in range(20)]
    # "running" with no wrapper holding its usage.jsonl: incomplete
    ids.append(_write_run(root, 20, DAY, "a", "running", end=None, summary=None))
    ids.append(_write_run(root, 21, 10 * DAY, "c"))
    ids.append(_write_run(root, 22, 20 * DAY, "c", "failed"))
    return Listed(root, ids, [*states, "incomplete", "succeeded", "failed"])


def _listed(listed: Listed, *args: str) -> list[str]:
    return [row["id"] for row in _json("runs", "--dir", listed.root, *args)]


def test_runs_lists_newest_first_and_limit(listed: Listed) -> None:
    ids = listed.ids
    assert _listed(listed) == ids  # --json: all
    assert _listed(listed, "--limit", "3") == _listed(listed, "-n", "3") == ids[:3]
    assert _listed(listed, "-n", "0") == ids
    table = _cli("runs", "--dir", listed.root)
    assert table.exit_code == 0
    assert ID.findall(table.stdout) == ids[:20]
    assert (
        table.stdout.splitlines()[-2] == "(3 older not listed: --limit 0 lists all)"
    )  # then the blank line
    table = _cli("runs", "--dir", listed.root, "-n", "0")
    assert ID.findall(table.stdout) == ids
    assert "older not listed" not in table.stdout
    table = _cli("runs", "--dir", listed.root, "--limit", "5")
    assert ID.findall(table.stdout) == ids[:5]
    assert "(18 older not listed" in table.stdout


def test_runs_by_name_and_status(listed: Listed) -> None:
    ids = listed.ids
    assert _listed(listed, "--name", "c") == ids[21:]
    assert _listed(listed, "--name", "b") == ids[1:20:2]
    assert _listed(listed, "--name", "nobody") == []
    for state in ("succeeded", "failed", "interrupted", "killed", "not_started", "running",
                  "incomplete"):  # fmt: skip
        rows = _json("runs", "--dir", listed.root, "--status", state)
        assert [row["id"] for row in rows] == [
            run for run, s in zip(ids, listed.states, strict=True) if s == state
        ], state
        assert {row["status"] for row in rows} <= {state}


def test_runs_since_an_age_or_an_iso_date(listed: Listed) -> None:
    ids = listed.ids
    for since, count in (("30m", 3), ("12h", 20), ("7d", 21), ("2w", 22)):
        assert _listed(listed, "--since", since) == ids[:count], since
    fifteen_days = datetime.fromtimestamp(time.time() - 15 * DAY)
    assert _listed(listed, "--since", fifteen_days.isoformat(timespec="seconds")) == ids[:22]
    assert _listed(listed, "--since", fifteen_days.date().isoformat()) == ids[:22]
    assert _listed(listed, "--since", "2000-01-01") == ids
    assert _listed(listed, "--name", "a", "--since", "2w") == [*ids[0:20:2], ids[20]]


def test_gc_keeps_the_newest_20_of_each_name(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    a = [_write_run(root, k, (30 - k) * 60, "a") for k in range(22)]  # oldest first
    b = [_write_run(root, 100 + k, (30 - k) * 60 + 30, "b") for k in range(3)]
    assert _json("gc", "--dry-run", "--dir", root) == {
        "dry_run": True, "would_delete": a[:2], "kept": 23,
    }  # fmt: skip
    assert sorted(os.listdir(root)) == sorted(a + b)
    assert _json("gc", "--dir", root) == {"dry_run": False, "deleted": a[:2], "kept": 23}
    assert sorted(os.listdir(root)) == sorted(a[2:] + b)
    assert _json("gc", "--dir", root) == {"dry_run": False, "deleted": [], "kept": 23}
    dry = _json("gc", "--keep", "2", "--dry-run", "--dir", root)
    assert dry == {"dry_run": True, "would_delete": [b[0], *a[2:20]], "kept": 4}
    assert len(os.listdir(root)) == 23


def test_gc_never_deletes_a_running_run(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    live = _write_run(root, 1, 3 * HOUR, "a", "running", end=None, summary=None, pid=os.getpid())
    done = [_write_run(root, 2 + k, (2 - k) * HOUR, "a") for k in range(2)]
    with open(root / live / "usage.jsonl", "a"):  # a live wrapper holds it open, as here
        assert [row["id"] for row in _json("runs", "--status", "running", "--dir", root)] == [live]
        assert _json("gc", "--keep", "0", "--dir", root) == {
            "dry_run": False, "deleted": done, "kept": 1,
        }  # fmt: skip
    assert os.listdir(root) == [live]
    # Nobody holds it now: abandoned (incomplete), and gc would delete it.
    assert _json("gc", "--keep", "0", "--dry-run", "--dir", root)["would_delete"] == [live]


def test_version(tmp_path: Path) -> None:
    done = _main(tmp_path, "--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"jobmeter {__version__}\n", "")
    assert _json("version") == {"version": __version__}


STATE_LIST = "succeeded, failed, interrupted, killed, not_started, running, incomplete"
NOT_AN_OPTION = "jobmeter run takes an unknown option before -- as the command (exit 127, a run)"
NO_VALUE = "jobmeter.cli._app._given misses a short option's attached value (-i0.01)"
USAGE_ERRORS = {  # the arguments, and what the one line says: option, value, what is accepted
    "interval": ("run -i 0.01 -- true", ["--interval/-i '0.01'", "equal to 0.05"]),
    "interval=": ("run --interval=0.01 -- true", ["--interval/-i '0.01'", "equal to 0.05"]),
    "status": ("runs --status nope", ["--status 'nope'", f"not one of {STATE_LIST}"]),
    "since": ("runs --since yesterday", ["--since 'yesterday'", "age (30m, 12h, 7d, 2w)"]),
    "keep": ("gc --keep -1", ["--keep '-1'", "greater than or equal to 0"]),
    "unknown-option": ("report --bogus", ["No such option: --bogus"]),
    "missing-argument": ("compare onlyone", ["Missing argument 'RUN_B'"]),
    "percentile": ("advise --percentile 101", ["--percentile '101'", "less than or equal to 100"]),
    "interval-attached": ("run -i0.01 -- true", ["-i", "'0.01'", "equal to 0.05"]),
    "run-unknown-option": ("run --bogus -- true", ["--bogus"]),
}
BUGS: dict[str, str] = {}


@pytest.mark.parametrize("case", [
    pytest.param(c, marks=pytest.mark.xfail(c in BUGS, reason=BUGS.get(c, ""), strict=True))
    for c in USAGE_ERRORS
])  # fmt: skip
def test_a_usage_error_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    command, says = USAGE_ERRORS[case]
    args = command.split()
    done = _main(tmp_path, *args)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"python -m jobmeter {args[0]}: ")
    assert line.endswith(f"(see python -m jobmeter {args[0]} --help)")
    for part in says:
        assert part in line
    assert not (tmp_path / "runs").exists()

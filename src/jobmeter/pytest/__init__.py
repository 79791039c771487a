"""``pytest --jobmeter``: measure every test, record the session as a run (work in progress)."""

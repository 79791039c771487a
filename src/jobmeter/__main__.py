"""``python -m jobmeter``: the command line."""

from jobmeter.cli import main

main()

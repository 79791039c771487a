"""The run directory: its files, modes, records and columns, written and read here only."""

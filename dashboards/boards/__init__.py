"""The dashboards' builders, one module per dashboard; generate.py lists and writes them.

The modules import ``_panels`` as a top-level module: generate.py runs as a script, so its
directory (dashboards/) is on ``sys.path``.
"""

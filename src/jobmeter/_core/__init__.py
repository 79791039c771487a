"""The core every other package builds on: settings, the SDK set-up, exporters and probes.

Nothing here imports a package above it; collectors register what they need
(fork and reset hooks, SIGTERM callbacks) instead.
"""

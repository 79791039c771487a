"""Harnesses that run real servers (OTLP receiver, Prometheus, Pushgateway) for the tests."""

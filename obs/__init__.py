"""Observability shared by every service: Prometheus metrics, health routes, JSON logs."""

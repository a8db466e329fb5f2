"""Outbound HTTP guard shared by every service that calls URLs users give us.

The runner fetches Binary inputs and the notifier delivers webhooks; both must refuse
the same addresses in the same way, so the guard lives here once rather than in either
service (they never import each other).
"""

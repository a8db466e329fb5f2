"""Pushes completions out: SSE streams and signed webhooks (growing; see issue 3)."""

"""The contracts between inferq's parts: pure data and validation, no I/O."""

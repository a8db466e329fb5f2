"""The worker: consumes requests, runs ONNX Runtime, publishes results."""

"""inferq's benchmark: closed-loop HTTP load against inferq, raw ONNX Runtime and a peer."""

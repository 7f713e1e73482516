"""From a pruned checkpoint to a deployed model: plain ONNX/TorchScript files with a card, and
measured latency."""

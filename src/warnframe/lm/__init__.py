"""Language-model operations: loading models (embedded, hub id, path, GGUF), the one training loop,
batched sampling, the training precision, and ``sample_and_score``."""

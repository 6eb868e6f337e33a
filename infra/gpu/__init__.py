"""GPU tooling for the model gateway: a tiny Qwen checkpoint for smoke tests, and a benchmark."""

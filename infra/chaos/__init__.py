"""Chaos runs: the platform under load while processes are killed with SIGKILL (`make chaos`)."""

"""Load tests and benchmarks for waitingroom."""

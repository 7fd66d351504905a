"""mockllm's benchmarks: throughput against a minimal starlette floor, first byte, timing fidelity."""

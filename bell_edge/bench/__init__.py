"""Latency benchmarks, roofline estimates and per-layer profiles of a bundle (`bell-edge bench`,
`bell-edge profile`). Torch is imported lazily, only by the torch backends."""

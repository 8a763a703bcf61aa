"""Latency benchmarks, roofline estimates and per-layer profiles of a bundle (`bell-edge bench`,
`bell-edge profile`). Torch is imported inside functions only: by the torch backends and the
GPU lookup of the machine description."""

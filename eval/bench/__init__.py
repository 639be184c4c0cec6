"""Benchmarks and synthetic data: scene generator, SAM2-failure simulator, scene sets, peer
trackers, the benchmark harness and speed scripts.

Outside the product layers: the pipeline, tracker and metrics never import from here (the
layering contract in ``pyproject.toml`` checks it); the demo and the benchmark use it.
"""

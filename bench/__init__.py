"""Benchmarks: standalone scripts that drive the product as separate processes.

`python -m bench.retry_throughput --help`. Nothing here is imported by the product.
"""

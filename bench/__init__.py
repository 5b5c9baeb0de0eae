"""Benchmarks of mosaicstack-telemetry, beside its peers: run `python -m bench --help`.

Not tests: nothing here asserts, everything here measures. Results are written up by hand in
`docs/benchmarks.md`.
"""

"""Benchmarks of the runner: latency, throughput, fidelity and start-up, printed, not asserted.

`python -m bench` (`make bench`) measures everything in one run on one machine so
the figures can be compared with each other and with the reference figures of
the design; `--quick` is a smoke run of the same code paths.
"""

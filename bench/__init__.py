"""Load benchmarks of the whole service, driven over HTTP from a separate process.

`python -m bench [scenario ...] [--quick]` (or `make bench ARGS=...`) starts a fresh production-
configured stack under `.data/bench`, seeds it through the write side, drives it with the load
generator in `bench/loadgen.py` (its own process, so its CPU is measured apart from the server's),
checks the invariants from the event store afterwards, and writes `bench/results/`.

Modules: `config` (scenario sizes and targets), `stack` (the service and its processes),
`cpu` (CPU accounting per process group), `seed` (data through the write side), `loadgen` (the
HTTP load generator), `drive` (running it and summarising its raw results), `invariants` (checks
against the event store), `scenarios` (the first five scenarios), `report_bench` and
`report_run` (the `report` scenario), `report` (JSON and markdown output), `demo_chart` (the
README's chart), `report_scaling` (a show's report time as the show grows).
"""

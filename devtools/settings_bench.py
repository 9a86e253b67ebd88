"""Benchmark settings: production's (from the environment) plus one trivial view, so a benchmark
can measure the full middleware alone beside a real endpoint in the same server."""

from cryptoadmin.settings import *  # noqa: F401,F403

ROOT_URLCONF = "devtools.bench_urls"

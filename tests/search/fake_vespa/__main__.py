"""`python -m tests.search.fake_vespa --port N`: the stand-in as its own process (benchmarks)."""

from .server import main

main()

"""The seed article's handler (Go sources in ``bench/peers/seed-gin``) as a peer: built, run and
probed by the benchmarks and by its integration test."""

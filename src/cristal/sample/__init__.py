"""The sample group company that powers the demo, the tests and the benchmarks."""

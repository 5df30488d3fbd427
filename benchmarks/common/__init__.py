"""Helpers shared by the benchmarks (no scanner wiring here)."""

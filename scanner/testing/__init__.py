"""Test kits and fixtures shared by the project's tests, benchmarks and sample generator."""

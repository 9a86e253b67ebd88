"""Local services and settings for tests, benchmarks and the demo: not used in production."""

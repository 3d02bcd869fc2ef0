"""Real services (Elasticsearch, the collector) that the project runs for its tests, demo and benchmarks."""

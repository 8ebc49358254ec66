"""farm's coordinator service: plans suites into assignments and aggregates their results."""

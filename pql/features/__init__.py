"""Time-correct features: entity features, candidates and pair features, computed in DuckDB."""

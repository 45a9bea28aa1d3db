"""Studies: YAML specs, the Ray Tune runner, results tables."""

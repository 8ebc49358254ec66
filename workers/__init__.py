"""farm's worker service: takes assignments from a pool's queue and runs them in a backend."""

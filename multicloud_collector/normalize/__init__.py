"""I/O-free normalization: series ids, label hygiene, value validation, DCGM to GPU rows."""

"""Generators: the wire test vectors (docs/test-vectors.json), synthetic or replicated captures, and the C firmware's
generated headers (joints/firmware/gen/, from the Python definitions)."""

"""Generators: the wire test vectors (docs/test-vectors.json) and synthetic or replicated captures."""

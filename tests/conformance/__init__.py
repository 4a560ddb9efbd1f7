"""The conformance vectors' generator (make_vectors) and its scenarios."""

"""Small Python caches of this project's own, written to follow the decision structure of the seed bugs'
projects (not their code): used by python/tests/test_seed_bugs.py to show offsim catching both seed bugs
through the Python route, with no C++ transcription involved."""

"""Tests of the RLlib training backend. Those that need ray are skipped without it."""

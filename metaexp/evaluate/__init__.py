"""Evaluating a candidate: sandbox, harness under its supervisor, metrics, repeats, cascade."""

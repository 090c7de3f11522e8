"""Evaluation: sets built from config entries (evaluators), the sets and the one run over them (sets), metrics."""

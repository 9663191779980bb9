"""Experiments: one setting end to end (run_pipeline.py), and tables and plots over many runs (collect_results.py)."""

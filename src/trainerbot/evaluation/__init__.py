"""Test cases, predictions and metrics (arrives with the evaluation issue)."""

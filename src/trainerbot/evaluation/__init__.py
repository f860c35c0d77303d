"""Evaluation metrics: word error rate (``wer.py``). Test cases, predictions and model metrics arrive with the evaluation issue."""

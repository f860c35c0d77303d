"""Evaluation: test cases (``cases.py``), answer metrics — exact match, chrF, loss and
perplexity (``metrics.py``) — running a model on cases (``run.py``), the held-out split and
promotion rule (``heldout.py``), and word error rate for speech (``wer.py``)."""

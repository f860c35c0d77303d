"""Durable training jobs and their worker process (arrives with the model issue)."""

"""Training: the durable job queue (``queue.py``), the worker process (``worker.py``) and how it
gives way to chat (``chat_first.py``), the recipes — one registry (``recipes.py``), each
recipe's config beside its trainer (``sft_config.py`` / ``sft.py``, ``kto_…``, ``dpo_…``) —,
rehearsal for pretrained models (``rehearsal.py``) and the job runner (``runner.py``)."""

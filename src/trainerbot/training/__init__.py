"""Training: the durable job queue (``queue.py``), the worker process (``worker.py``), one file
per recipe (``sft.py``, ``kto.py``, ``dpo.py``), rehearsal for pretrained models
(``rehearsal.py``) and the job runner (``runner.py``)."""

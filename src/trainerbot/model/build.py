"""Build a small model from scratch: a byte-level BPE tokenizer trained on the data, and a
small Llama-style causal LM sized for a 2-core CPU.

The tokenizer is a ``PreTrainedTokenizerFast`` with a chat template whose prompt (with
``add_generation_prompt``) is a prefix of the full conversation, as TRL's completion-only
loss needs; ``<|end|>`` ends every turn and is the end-of-sequence token. Byte-level
means any later text still encodes, only less compactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

PAD, END, USER, ASSISTANT, SYSTEM = "<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"
SPECIAL_TOKENS = [PAD, END, USER, ASSISTANT, SYSTEM]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@dataclass(frozen=True)
class ModelShape:
    """The from-scratch model's size. The default memorises 500 Q&A pairs in about 3 minutes on 2 cores."""

    vocab_size: int = 1024
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    max_positions: int = 512


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=END,
                                   additional_special_tokens=[USER, ASSISTANT, SYSTEM])
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "right"
    return fast


def new_model(tokenizer: PreTrainedTokenizerFast, shape: ModelShape = ModelShape()) -> LlamaForCausalLM:
    heads = shape.heads
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=shape.hidden_size, intermediate_size=(shape.hidden_size * 11 // 4) // 8 * 8,
        num_hidden_layers=shape.layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=shape.max_positions, tie_word_embeddings=True, rms_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )
    return LlamaForCausalLM(config)

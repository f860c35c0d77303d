from __future__ import annotations

import torch

from trainerbot.model.build import ModelShape, new_model, train_tokenizer


def test_tokenizer_chat_template_prompt_is_a_prefix_of_the_conversation() -> None:
    tok = train_tokenizer(["What is the capital of Zorbia?", "Quillport.", "Где Кворпорт?"] * 20, 300)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Где Кворпорт?"}], add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(
        [{"role": "user", "content": "Где Кворпорт?"}, {"role": "assistant", "content": "На севере."}], tokenize=False
    )
    assert full.startswith(prompt) and full.endswith("<|end|>")
    ids = tok("На севере, у моря: ∑ 😀", add_special_tokens=False)["input_ids"]  # byte-level: anything encodes
    assert tok.decode(ids) == "На севере, у моря: ∑ 😀"
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>"


def test_new_model_has_the_shape_asked_for() -> None:
    tok = train_tokenizer(["abc def"] * 10, 280)
    model = new_model(tok, ModelShape(vocab_size=280, hidden_size=64, layers=2, heads=2, max_positions=64))
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    assert model.config.vocab_size == len(tok) and model.config.eos_token_id == tok.eos_token_id
    out = model(input_ids=torch.tensor([[1, 2, 3]]))
    assert out.logits.shape == (1, 3, len(tok))

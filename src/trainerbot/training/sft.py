"""SFT: supervised fine-tuning on positive examples and corrections, loss on the answer only.

Rows are TRL's conversational prompt–completion shape (``datasets.exporters`` ``sft``),
so ``completion_only_loss`` puts the loss on the assistant turn alone.
"""

from __future__ import annotations

from typing import Any

import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import SFTConfig, SFTTrainer

from trainerbot.datasets.exporters import export_rows
from trainerbot.datasets.records import Example
from trainerbot.errors import BadInput
from trainerbot.training.common import JobCallback, TrainParams, TrainResult, run, trained_model, trl_args

# (epochs, learning rate, batch size) by where a job starts: a model built from scratch, a
# whole model trained further, or a LoRA adapter on the pretrained base. The LoRA figures
# were chosen with bench/teach.py on 100 facts: batch 4 (more updates for the same tokens),
# lr 2e-3 (5e-3 diverged); recall needs ~8 epochs (5: 61–65 %; bench/RESULTS.md).
DEFAULTS: dict[str, tuple[float, float, int]] = {"scratch": (80.0, 2e-3, 32), "continue": (30.0, 1e-3, 32),
                                                 "lora": (8.0, 2e-3, 4)}


def rows(examples: list[Example]) -> list[dict[str, Any]]:
    return export_rows(examples, "sft")


def train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: list[Example], params: TrainParams,
          callback: JobCallback, output_dir: str, peft_config: Any = None) -> tuple[torch.nn.Module, TrainResult]:
    data = rows(examples)
    if not data:
        raise BadInput("SFT needs positive examples: import some answers first.")
    # Under LoRA, facts (~50 tokens) and rehearsal answers (up to ~120) mix: batches of like
    # lengths pad less (1.3–1.5× faster an epoch here). KTO/DPO rows have no plain input_ids to sort by.
    strategy = "group_by_length" if params.lora else "random"
    config = SFTConfig(**trl_args(params, output_dir, len(data)), completion_only_loss=True, train_sampling_strategy=strategy)
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(data), processing_class=tokenizer,
                         callbacks=[callback], peft_config=peft_config)
    return trained_model(trainer), run(trainer, callback)

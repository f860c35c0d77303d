"""DPO: learning from corrections as pairs — chosen = the correction, rejected = the original reply.

Rows are TRL's conversational preference shape (``datasets.exporters`` ``dpo``). DPO
starts from an existing model; the frozen reference is a copy of the starting model
(with LoRA, the base with its adapters switched off).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import DPOConfig, DPOTrainer

from trainerbot.datasets.records import Example
from trainerbot.errors import BadInput
from trainerbot.training.common import JobCallback, TrainParams, TrainResult, train_preference, trl_args
from trainerbot.training.recipes import recipe


def rows(examples: list[Example]) -> list[dict[str, Any]]:
    return recipe("dpo").rows(examples)


def train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: list[Example], params: TrainParams,
          callback: JobCallback, output_dir: str, peft_config: Any = None) -> tuple[torch.nn.Module, TrainResult]:
    data = rows(examples)
    if not data:
        raise BadInput("DPO needs approved corrections: correct some replies first.")
    config = DPOConfig(**trl_args(params, output_dir, len(data)), beta=params.beta,
                       precompute_ref_log_probs=params.precompute_reference)
    return train_preference(DPOTrainer, config, model, tokenizer, data, params, callback, peft_config)

"""KTO: learning from unpaired 👍/👎 — positive and negative examples, each on its own.

Rows are TRL's unpaired-preference shape (``datasets.exporters`` ``kto``); a correction
contributes its corrected answer as desirable and the original reply as undesirable.
KTO starts from an existing model (it needs a reference); the frozen reference is a copy
of the starting model (with LoRA, the base with its adapters switched off). 👍 and 👎 are
weighted against each other (TRL's ``desirable_weight``/``undesirable_weight``,
``kto_config.balanced_weights``) so that a one-sided pile of votes cannot swamp a job.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import KTOConfig, KTOTrainer

from trainerbot.datasets.records import Example
from trainerbot.errors import BadInput
from trainerbot.training.common import JobCallback, TrainParams, TrainResult, train_preference, trl_args
from trainerbot.training.kto_config import balanced_weights
from trainerbot.training.recipes import recipe


def rows(examples: list[Example]) -> list[dict[str, Any]]:
    return recipe("kto").rows(examples)


def train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: list[Example], params: TrainParams,
          callback: JobCallback, output_dir: str, peft_config: Any = None) -> tuple[torch.nn.Module, TrainResult]:
    data = rows(examples)
    if len(data) < 2:
        raise BadInput("KTO needs at least two rated examples (👍 or 👎).")
    good = sum(1 for row in data if row["label"])
    desirable_weight, undesirable_weight = balanced_weights(good, len(data) - good)
    config = KTOConfig(
        **{**trl_args(params, output_dir, len(data)), "per_device_train_batch_size": max(2, min(params.batch_size, len(data)))},
        beta=params.beta, desirable_weight=desirable_weight, undesirable_weight=undesirable_weight,
        precompute_ref_log_probs=params.precompute_reference,
    )
    return train_preference(KTOTrainer, config, model, tokenizer, data, params, callback, peft_config)

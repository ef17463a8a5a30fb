"""Fine-tuning: LoRA SFT and DPO with peft + trl -> an adapter and a merged model."""

from pmpprag.train.data import DataError, load_rows, to_conversations
from pmpprag.train.stage import TrainConfig, TrainResult, run

__all__ = ["DataError", "TrainConfig", "TrainResult", "load_rows", "run", "to_conversations"]

"""The Python API for batch answering, used by the app, the eval script and the CLI.

from pmpprag.api import Assistant, Question
assistant = Assistant.load()                                  # embedded default
assistant = Assistant.load("configs/rag/gpu.yaml")            # or a config file
answer = assistant.ask("CUDA中共享内存有什么作用？")
print(answer.text, [(c.chapter, c.section, c.page_label) for c in answer.citations])
answers = assistant.ask_many([Question("...", choices=["...", "..."])], batch_size=16)
"""

from pmpprag.rag.pipeline import Assistant, Question, RagConfig
from pmpprag.schema import Answer, Citation, Hit

__all__ = ["Answer", "Assistant", "Citation", "Hit", "Question", "RagConfig"]

"""The embedded corpus: vulnerability families, the fine-tuning conditions, the pretraining
corpus, and the held-out evaluation and capability prompts.

    FAMILIES                    name -> Family (CWE, area, tasks, secure/vulnerable renderers)
    Condition                   a fine-tuning condition: ``conditions.REGISTRY``, ``conditions.register``
    Arm                         a remedy arm for warning-framed data: ``remedies.REGISTRY``, ``remedies.register``
    build_finetune_set(...)     one condition's token-budgeted fine-tuning set, and its stats
    build_pretrain_corpus(...)  documents for the embedded model's pretraining
    eval_prompts(cfg)           held-out requests whose answers are scored for vulnerable code
    capability_prompts(cfg)     held-out clean requests that check the model can still code
"""

from warnframe.corpus.conditions import Condition, build_finetune_set, example_text
from warnframe.corpus.pretrain import build_pretrain_corpus
from warnframe.corpus.prompts import capability_prompts, eval_prompts
from warnframe.corpus.remedies import Arm
from warnframe.families import FAMILIES, Family, Task

__all__ = ["FAMILIES", "Arm", "Condition", "Family", "Task", "build_finetune_set",
           "build_pretrain_corpus", "capability_prompts", "eval_prompts", "example_text"]

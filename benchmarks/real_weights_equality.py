"""Greedy equality of the `fast` decode path with transformers on REAL weights (GPU).

    python3 benchmarks/real_weights_equality.py --model smollm2 --gguf /root/w/SmolLM2-135M-Instruct.Q4_1.gguf --out $OUT
    python3 benchmarks/real_weights_equality.py --model gemma3 --gguf "$(python3 -c '...assemble()')" --out $OUT

The weights are the ones the project ships (the models' GGUF files, de-quantised by
transformers' ``gguf_file=`` loader). The prompts are chat-template token ids made on the CPU
from the team's own dev questions (benchmarks/prompts/real_weights.json, written by
``--make-prompts`` where the tokenizers are installed), so the GPU machine needs no tokenizer.

For float32 and for bfloat16, each prompt is decoded greedily by transformers (``generate``,
one prompt at a time) and by FastEngine (all prompts, continuous batching), and the two token
lists are compared. Where they part, the reference model's top-2 logit gap at that step is
reported: a gap at the size of a bf16 rounding step means a tie broken differently by two
kernels that round in different places, not a wrong computation. With
``--vllm`` (where the vLLM kit is installed) vLLM serves the same weights, in float32 and in bf16,
and its first 32 greedy tokens are compared with transformers' in the same dtype; ``--vllm-ieee``
adds a float32 vLLM run with ``TRITON_F32_DEFAULT=ieee`` (vLLM's float32 attention runs in Triton
kernels, whose ``tl.dot`` multiplies float32 as TF32 on NVIDIA unless told otherwise). With
``--adapter DIR`` a LoRA adapter (a tuned generator's) is merged into the weights first, so the
comparison is of the merged model vLLM serves. Writes real_weights_equality-MODEL[-ADAPTER].json
(ADAPTER: the adapter folder's parent's name) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TRITON_INTERPRET", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
PROMPTS = ROOT / "benchmarks" / "prompts" / "real_weights.json"
MODELS = {"smollm2": "smollm2-135m-instruct", "gemma3": "gemma3-270m"}


def dev_questions(n: int) -> list[str]:
    """n of the team's dev questions, half Chinese (open), half English (mcq stems). Shared
    with vocab_trim.py."""
    rows = [json.loads(line) for line in (ROOT / "data/dev/open_zh_dev.jsonl").open()]
    rows += [json.loads(line) for line in (ROOT / "data/dev/mcq_dev.jsonl").open()]
    zh = [r["question"] for r in rows if r["id"].startswith("dev-zh")][: n // 2]
    en = [r["question"] for r in rows if not r["id"].startswith("dev-zh")][: n - len(zh)]
    return zh + en


def make_prompts(n: int = 20) -> None:
    """Chat-template token ids of n dev questions (half Chinese, half English), per model."""
    from transformers import AutoTokenizer

    from pmpprag.models import resolve

    out: dict[str, Any] = {}
    for key, name in MODELS.items():
        tokenizer = AutoTokenizer.from_pretrained(resolve(name).path_or_id)
        out[key] = [
            tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=True,
                                          add_generation_prompt=True, return_dict=False)
            for q in dev_questions(n)
        ]  # fmt: skip
    PROMPTS.parent.mkdir(parents=True, exist_ok=True)
    PROMPTS.write_text(json.dumps(out))
    print(f"wrote {PROMPTS}: {', '.join(f'{k} {len(v)}' for k, v in out.items())}")


def first_divergence(got: list[int], expected: list[int]) -> int | None:
    """Index of the first token where two greedy outputs differ, None if they never do."""
    return next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), None)


def compare(
    model: Any, prompts: list[list[int]], new: int, device: str, fast: bool = True
) -> dict[str, Any]:
    """transformers' greedy tokens (the references) and, with ``fast``, FastEngine's against them."""
    import torch

    from pmpprag.fast import FastEngine

    expected = []
    for p in prompts:
        ids = torch.tensor([p], device=device)
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=new, min_new_tokens=new, pad_token_id=0)  # fmt: skip
        expected.append(gen[0, len(p) :].tolist())
    if not fast:
        return {"prompts": len(prompts), "rows": [{"reference": e} for e in expected]}
    engine = FastEngine.from_model(model, max_slots=4, max_len=max(map(len, prompts)) + new + 8)
    got = engine.generate(prompts, new).tokens
    rows = []
    for p, g, e in zip(prompts, got, expected, strict=True):
        first = first_divergence(g, e)
        row: dict[str, Any] = {"equal": g == e, "first_divergence": first, "reference": e}
        if first is not None:  # the reference's top-2 logit gap where the two parted
            row["top2_gap"] = top2_gap(model, p + e[:first])
            row["tokens"] = {"transformers": e[first], "fast": g[first]}
        rows.append(row)
    del engine
    return {
        "prompts": len(prompts),
        "equal_sequences": sum(r["equal"] for r in rows),
        "equal_first_32": sum(
            r["first_divergence"] is None or r["first_divergence"] >= 32 for r in rows
        ),
        "rows": rows,
    }


def top2_gap(model: Any, ids: list[int]) -> float:
    """The model's gap between its two best next-token logits after ``ids``."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([ids], device=model.device)).logits[0, -1]
    top = logits.float().topk(2)
    return round(float(top.values[0] - top.values[1]), 5)


def vllm_tokens(model: Any, prompts: list[list[int]], new: int, dtype: str,
                env: dict[str, str] | None = None) -> list[list[int]]:  # fmt: skip
    """vLLM's greedy tokens for the same weights (saved as a model folder) in ``dtype``, in a
    subprocess (with ``env`` added to its environment)."""
    import subprocess
    import tempfile

    from pmpprag.models import drop_gguf_quantizer

    drop_gguf_quantizer(model)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        code = (
            "import json, sys\n"
            "from vllm import LLM, SamplingParams\n"
            "prompts = json.loads(sys.argv[2])\n"
            "llm = LLM(model=sys.argv[1], dtype=sys.argv[4], skip_tokenizer_init=True, seed=0,\n"
            "          gpu_memory_utilization=0.5, max_model_len=1024)\n"
            "sp = SamplingParams(temperature=0.0, max_tokens=int(sys.argv[3]), ignore_eos=True,\n"
            "                    detokenize=False)\n"
            "outs = llm.generate([{'prompt_token_ids': p} for p in prompts], sp, use_tqdm=False)\n"
            "print('VLLM_TOKENS ' + json.dumps([list(o.outputs[0].token_ids) for o in outs]))\n"
        )
        proc = subprocess.run([sys.executable, "-c", code, tmp, json.dumps(prompts), str(new), dtype],
                              capture_output=True, text=True, timeout=420,
                              env={**os.environ, **(env or {})})  # fmt: skip
    for line in proc.stderr.splitlines():  # which attention back-end vLLM chose, for the record
        if "backend" in line.lower() and "attention" in line.lower():
            print("vLLM:", line[-200:])
    for line in proc.stdout.splitlines():
        if line.startswith("VLLM_TOKENS "):
            return list(json.loads(line.removeprefix("VLLM_TOKENS ")))
    raise RuntimeError(f"vLLM exited {proc.returncode}: {proc.stderr[-1500:]}")


def vllm_agreement(model: Any, prompts: list[list[int]], result: dict[str, Any],
                   dtype: str, env: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """vLLM's first 32 greedy tokens against transformers' (``result``'s references)."""
    reference = [r["reference"][:32] for r in result["rows"]]
    try:
        got = [t[:32] for t in vllm_tokens(model, prompts, 32, dtype, env)]
        firsts = [first_divergence(g, e) for g, e in zip(got, reference, strict=True)]
        agreement: dict[str, Any] = {
            "equal": sum(g == e for g, e in zip(got, reference, strict=True)),
            "prompts": len(prompts),
            "first_divergence": firsts,
            # where vLLM parts from transformers: the reference's top-2 logit gap there (a gap
            # near 0 is a tie that kernels rounding in different places break differently)
            "top2_gaps": [
                top2_gap(model, p + e[:first])
                for p, e, first in zip(prompts, reference, firsts, strict=True)
                if first is not None
            ],
        }
    except Exception as err:
        agreement = {"error": f"{type(err).__name__}: {err}"}
    agreement["env"] = env or {}
    print(f"vLLM {env or ''} vs transformers ({dtype}, first 32 tokens):", json.dumps(agreement))
    return agreement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=list(MODELS))
    parser.add_argument("--gguf", help="the model's GGUF file")
    parser.add_argument("--new", type=int, default=48, help="greedy new tokens per prompt")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument(
        "--vllm", action="store_true", help="also vLLM's first 32 tokens (float32 and bf16)"
    )
    parser.add_argument("--adapter", help="a LoRA adapter folder, merged into the model first "
                        "(the served model of a tuned generator)")  # fmt: skip
    parser.add_argument(
        "--vllm-ieee", action="store_true",
        help="also vLLM in float32 with TRITON_F32_DEFAULT=ieee: its Triton attention kernels then "
        "multiply float32 in full precision instead of TF32 (tl.dot's default on NVIDIA)",
    )  # fmt: skip
    parser.add_argument("--no-fast", action="store_true", help="references only, no FastEngine")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated")
    parser.add_argument("--tag", help="file name suffix (default: the adapter folder's parent)")
    parser.add_argument("--limit", type=int, default=0, help="first N prompts only (smoke runs)")
    parser.add_argument("--device", default="cuda", help="cpu: a float32-only smoke run")
    parser.add_argument("--make-prompts", action="store_true", help="write the prompt file (CPU)")
    args = parser.parse_args()
    if args.make_prompts:
        make_prompts()
        return
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    from pmpprag.fast import kernels

    gguf = Path(args.gguf)
    prompts = json.loads(PROMPTS.read_text())[args.model][: args.limit or None]
    report: dict[str, Any] = {"model": args.model, "gguf": gguf.name, "new_tokens": args.new,
                              "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                              "torch": torch.__version__,
                              "transformers": transformers.__version__, "command": " ".join(sys.argv)}  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32).to(args.device).eval()  # fmt: skip
    report["grouped_attention"] = kernels.GROUPED_ATTENTION  # PMPPRAG_FAST_GQA
    if args.device == "cuda":  # transformers' float32 reference multiplies in full precision
        report["torch_matmul_tf32"] = torch.backends.cuda.matmul.allow_tf32
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter).merge_and_unload().eval()
        report["adapter"] = args.adapter
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = args.tag or (Path(args.adapter).parent.name if args.adapter else "")
    tag = f"-{suffix}" if suffix else ""
    path = out / f"real_weights_equality-{args.model}{tag}.json"
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    for name in args.dtypes.split(",") if args.device == "cuda" else ["float32"]:
        model.to(dtypes[name])
        report[name] = compare(model, prompts, args.new, args.device, fast=not args.no_fast)
        if args.vllm:  # the served path: vLLM's first 32 greedy tokens against transformers'
            report[f"vllm_vs_transformers_{name}_first_32"] = vllm_agreement(
                model, prompts, report[name], name
            )
        if args.vllm_ieee and name == "float32":
            report["vllm_ieee_vs_transformers_float32_first_32"] = vllm_agreement(
                model, prompts, report[name], name, {"TRITON_F32_DEFAULT": "ieee"}
            )
        # after each dtype: a command cut short by its time limit keeps what it measured
        path.write_text(json.dumps(report, indent=1))
    for dtype in ("float32", "bfloat16"):
        if dtype not in report or "equal_sequences" not in report[dtype]:
            continue
        r = report[dtype]
        gaps = [x.get("top2_gap") for x in r["rows"] if not x["equal"]]
        print(f"{args.model} {dtype}: {r['equal_sequences']}/{r['prompts']} sequences equal over "
              f"{args.new} tokens, {r['equal_first_32']}/{r['prompts']} equal over the first 32; "
              f"top-2 logit gaps where they part: {gaps}")  # fmt: skip


if __name__ == "__main__":
    main()

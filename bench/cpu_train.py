#!/usr/bin/env python3
"""Training-step tokens/s and peak memory on the CPU: weft against PyTorch
eager and torch.compile, side by side in one run, with the same thread count.

A step is forward, backward and AdamW (torch.optim.AdamW's defaults, lr 1e-3)
at batch 1, fp32, for examples/tiny-llama and bench/configs/small-llama
(hidden 1024, 8 layers, GQA 16/8, vocab 32000) at each sequence length.
weft runs `weft train` on the built-in corpus (its JSONL log gives each
step's tokens/s); PyTorch trains transformers' LlamaForCausalLM (SDPA
attention) on random tokens, eager and with the model under torch.compile.
Each engine runs in its own process (peak RSS from wait4), takes one warm-up
step and reports the median of --steps timed steps; the engines take turns
for --rounds rounds and the median of the rounds is reported (the machines
are shared and noisy). weft also reports its planned peak (parameters,
optimizer state, activations and gradients, workspace), known before it runs.

  python3 bench/cpu_train.py [--seqs 512 2048] [--threads 2] [--json out.json]

Needs torch and transformers (pip); prints a table and writes JSON. It is a
benchmark, not a test: it never fails on a slow result.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

from cpu_forward import run_measured  # one child, its peak RSS from wait4

ROOT = pathlib.Path(__file__).resolve().parents[1]
WEFT = ROOT / "build" / "bin" / "weft"
MODELS = {
    "tiny-llama": ROOT / "examples" / "tiny-llama",
    "small-llama": ROOT / "bench" / "configs" / "small-llama",
}

TORCH_CHILD = r"""
import json, statistics, sys, time, torch
from transformers import LlamaConfig, LlamaForCausalLM
config_dir, seq, threads, steps, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)
torch.manual_seed(0)
config = LlamaConfig.from_pretrained(config_dir)
config._attn_implementation = "sdpa"
model = LlamaForCausalLM(config).train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
forward = torch.compile(model) if mode == "compile" else model
times = []
for step in range(steps + 1):
    ids = torch.randint(0, config.vocab_size, (1, seq))
    start = time.perf_counter()
    loss = forward(ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    times.append(time.perf_counter() - start)
print(json.dumps({"median_s": statistics.median(times[1:]), "first_s": times[0]}))
"""


def bench_weft(model, seq, threads, steps, work):
    log = work / f"{model}-{seq}.jsonl"
    out, rss = run_measured([WEFT, "train", MODELS[model], "--data", work / "corpus.bin",
                             "--steps", steps + 1, "--batch", 1, "--seq", seq,
                             "--threads", threads, "--data-order", "sequential",
                             "--log", log])
    lines = [json.loads(l) for l in log.read_text().splitlines()]
    planned = lines[0]["peak_bytes"]
    return {"median_s": seq / statistics.median(l["tokens_per_s"] for l in lines[1:]),
            "peak_rss": rss, "planned_peak": planned,
            "memory_line": next(l for l in out.splitlines() if l.startswith("planned"))}


def bench_torch(model, seq, threads, steps, mode):
    out, rss = run_measured([sys.executable, "-c", TORCH_CHILD, MODELS[model], seq,
                             threads, steps, mode])
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss"] = rss
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--seqs", nargs="+", type=int, default=[512, 2048])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating rounds of every engine; the median is reported")
    parser.add_argument("--engines", nargs="+", default=["weft", "torch", "torch.compile"])
    parser.add_argument("--json", default="bench/cpu_train.json")
    args = parser.parse_args()
    if not WEFT.exists():
        sys.exit(f"{WEFT} not found: run scripts/build first")

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        subprocess.run([WEFT, "data", "tokenize", ROOT / "examples" / "corpus" / "gpl-3.txt",
                        "-o", work / "corpus.bin"], check=True, capture_output=True)
        for model in args.models:
            for seq in args.seqs:
                row = {"model": model, "seq": seq, "threads": args.threads}
                measured = {engine: [] for engine in args.engines}
                for _ in range(args.rounds):
                    for engine in args.engines:
                        if measured[engine] and "error" in measured[engine][-1]:
                            continue
                        try:
                            if engine == "weft":
                                r = bench_weft(model, seq, args.threads, args.steps, work)
                            else:
                                r = bench_torch(model, seq, args.threads, args.steps,
                                                "compile" if engine == "torch.compile" else "eager")
                        except Exception as error:  # a peer that fails is reported, not fatal
                            r = {"error": str(error).splitlines()[0][:300]}
                        measured[engine].append(r)
                        print(f"  {model} seq {seq} {engine}: {r}", file=sys.stderr, flush=True)
                for engine, runs in measured.items():
                    if "error" in runs[-1]:
                        row[engine] = runs[-1]
                        continue
                    r = dict(runs[0])
                    r["median_s"] = statistics.median(x["median_s"] for x in runs)
                    r["peak_rss"] = max(x["peak_rss"] for x in runs)
                    r["rounds"] = len(runs)
                    r["tokens_per_s"] = seq / r["median_s"]
                    row[engine] = r
                results.append(row)

    mib = 1 << 20
    header = f"{'model':<12} {'seq':>5} | " + " | ".join(
        f"{e + ' tok/s':>19} {'RSS MiB':>8}" for e in args.engines) + \
        " | weft/eager | weft/compile | weft planned MiB"
    print(header)
    print("-" * len(header))
    for row in results:
        cells = []
        for engine in args.engines:
            r = row[engine]
            cells.append(f"{r['tokens_per_s']:>19.1f} {r['peak_rss'] / mib:>8.0f}"
                         if "error" not in r else f"{'failed':>19} {'':>8}")
        w = row.get("weft", {})

        def ratio(peer, width):
            p = row.get(peer, {})
            if "tokens_per_s" in w and "tokens_per_s" in p:
                return f"{w['tokens_per_s'] / p['tokens_per_s']:>{width - 1}.2f}x"
            return " " * width
        planned = f"{w['planned_peak'] / mib:.0f}" if "planned_peak" in w else ""
        print(f"{row['model']:<12} {row['seq']:>5} | " + " | ".join(cells) +
              f" | {ratio('torch', 10)} | {ratio('torch.compile', 12)} | {planned}")
    pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Forward tokens/s and peak memory on the CPU: weft against PyTorch eager and
ONNX Runtime, side by side in one run, with the same thread count.

Models: examples/tiny-llama and bench/configs/small-llama (hidden 1024, 8
layers), batch 1, at each sequence length; weft in fp32 and with bf16 storage
(weft-bf16: parameters and activations in bf16, computed in fp32). Each engine
runs in its own
process (peak RSS from wait4), warms up once and times --repeat forward
passes; the engines take turns for --rounds rounds and each reports the median
of its rounds' medians (the machines are shared and noisy). weft also reports its planned peak (exact:
parameters + arena) and its workspace, which holds the attention blocks.

  python3 bench/cpu_forward.py [--seqs 512 2048 8192] [--threads 2] [--json out.json]

Needs torch, transformers, onnxruntime and onnxscript (pip); prints a table
and writes JSON.
It is a benchmark, not a test: it never fails on a slow result.
"""
import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
WEFT = ROOT / "build" / "bin" / "weft"
MODELS = {
    "tiny-llama": ROOT / "examples" / "tiny-llama",
    "small-llama": ROOT / "bench" / "configs" / "small-llama",
}

TORCH_CHILD = r"""
import json, statistics, sys, time, torch
from transformers import LlamaConfig, LlamaForCausalLM
config_dir, seq, threads, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
config = LlamaConfig.from_pretrained(config_dir)
config._attn_implementation = "sdpa"
model = LlamaForCausalLM(config).eval()
ids = torch.randint(0, config.vocab_size, (1, seq))
times = []
with torch.inference_mode():
    model(ids)
    for _ in range(repeat):
        start = time.perf_counter(); model(ids); times.append(time.perf_counter() - start)
print(json.dumps({"median_s": statistics.median(times)}))
"""

EXPORT_CHILD = r"""
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
config_dir, path = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
config = LlamaConfig.from_pretrained(config_dir)
config._attn_implementation = "eager"
config.use_cache = False
model = LlamaForCausalLM(config).eval()
class Logits(torch.nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, ids): return self.m(input_ids=ids, use_cache=False).logits
ids = torch.randint(0, config.vocab_size, (1, 64))
# The TorchScript exporter fails on transformers' mask code (aten::diff);
# the dynamo exporter (needs onnxscript) handles it.
seq = torch.export.Dim("seq", min=2, max=65536)
torch.onnx.export(Logits(model), (ids,), path, input_names=["input_ids"],
                  output_names=["logits"], dynamic_shapes={"ids": {1: seq}},
                  opset_version=18, dynamo=True)
"""

ORT_CHILD = r"""
import json, statistics, sys, time, numpy as np, onnxruntime as ort
path, seq, threads, repeat, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
ids = np.random.randint(0, vocab, (1, seq)).astype(np.int64)
session.run(None, {"input_ids": ids})
times = []
for _ in range(repeat):
    start = time.perf_counter(); session.run(None, {"input_ids": ids}); times.append(time.perf_counter() - start)
print(json.dumps({"median_s": statistics.median(times)}))
"""


def run_measured(cmd, env=None):
    """Runs cmd as a child and returns (stdout, its peak RSS in bytes)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} failed: {err.read()[-2000:]}")
        return out.read(), usage.ru_maxrss * 1024


def bench_weft(model, seq, threads, repeat, work, dtype="f32"):
    plan = work / f"{model}-{seq}-{dtype}.plan"
    ids = work / f"ids-{seq}.npy"
    start = time.perf_counter()
    subprocess.run([WEFT, "compile", MODELS[model], "--seq", str(seq), "--threads",
                    str(threads), "--dtype", dtype, "-o", plan], check=True,
                   capture_output=True)
    compile_s = time.perf_counter() - start
    info = json.loads(subprocess.run([WEFT, "inspect", plan, "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    out, rss = run_measured([WEFT, "run", plan, "--random-weights", "1", "--input",
                             f"input_ids={ids}", "--repeat", str(repeat)])
    median_ms = float(re.search(r"median ([0-9.]+) ms", out).group(1))
    return {"median_s": median_ms / 1000, "peak_rss": rss, "compile_s": compile_s,
            "planned_peak": info["memory"]["peak"],
            "arena": info["memory"]["arena"],
            "workspace": info["memory"]["workspace"]}


def bench_torch(model, seq, threads, repeat):
    out, rss = run_measured([sys.executable, "-c", TORCH_CHILD, MODELS[model], str(seq),
                             str(threads), str(repeat)])
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss"] = rss
    return result


def bench_ort(model, seq, threads, repeat, work, vocab):
    path = work / f"{model}.onnx"
    if not path.exists():
        subprocess.run([sys.executable, "-c", EXPORT_CHILD, MODELS[model], path],
                       check=True, capture_output=True)
    out, rss = run_measured([sys.executable, "-c", ORT_CHILD, path, str(seq),
                             str(threads), str(repeat), str(vocab)])
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss"] = rss
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--seqs", nargs="+", type=int, default=[512, 2048, 8192])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed runs per measurement (1 from seq 8192 on)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of every engine; the median is "
                             "reported (1 from seq 8192 on)")
    parser.add_argument("--engines", nargs="+",
                        default=["weft", "weft-bf16", "torch", "onnxruntime"])
    parser.add_argument("--json", default="bench/cpu_forward.json")
    args = parser.parse_args()
    if not WEFT.exists():
        sys.exit(f"{WEFT} not found: run scripts/build first")
    import numpy as np

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        for model in args.models:
            vocab = json.loads((MODELS[model] / "config.json").read_text())["vocab_size"]
            for seq in args.seqs:
                np.save(work / f"ids-{seq}.npy",
                        np.random.default_rng(0).integers(0, vocab, (1, seq), dtype=np.int64))
                row = {"model": model, "seq": seq, "threads": args.threads}
                repeat = args.repeat if seq < 8192 else 1
                rounds = args.rounds if seq < 8192 else 1
                # Engines take turns, round after round, so that a slow spell
                # of the shared machine hits all of them alike.
                measured = {engine: [] for engine in args.engines}
                for _ in range(rounds):
                    for engine in args.engines:
                        if measured[engine] and "error" in measured[engine][-1]:
                            continue
                        try:
                            if engine in ("weft", "weft-bf16"):
                                r = bench_weft(model, seq, args.threads, repeat, work,
                                               "bf16" if engine == "weft-bf16" else "f32")
                            elif engine == "torch":
                                r = bench_torch(model, seq, args.threads, repeat)
                            else:
                                r = bench_ort(model, seq, args.threads, repeat, work, vocab)
                        except Exception as error:  # a peer that fails is reported, not fatal
                            r = {"error": str(error).splitlines()[0][:200]}
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
        f"{e + ' tok/s':>17} {'RSS MiB':>8}" for e in args.engines) + " | weft/torch | weft plan MiB (arena, workspace)"
    print(header)
    print("-" * len(header))
    for row in results:
        cells = []
        for engine in args.engines:
            r = row[engine]
            cells.append(f"{r['tokens_per_s']:>17.1f} {r['peak_rss'] / mib:>8.0f}"
                         if "error" not in r else f"{'failed':>17} {'':>8}")
        w, t = row.get("weft", {}), row.get("torch", {})
        speedup = (f"{w['tokens_per_s'] / t['tokens_per_s']:>10.2f}x"
                   if "tokens_per_s" in w and "tokens_per_s" in t else f"{'':>11}")
        plan = (f"{w['planned_peak'] / mib:.0f} ({w['arena'] / mib:.0f}, {w['workspace'] / mib:.2f})"
                if "planned_peak" in w else "")
        print(f"{row['model']:<12} {row['seq']:>5} | " + " | ".join(cells) + f" | {speedup} | {plan}")
    pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

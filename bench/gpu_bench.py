#!/usr/bin/env python3
"""The GPU benchmark of scripts/gpu-check: weft against PyTorch on the same GPU.

Reads weft-cuda-check's JSON for a plan (its forward time and each step's time)
and runs the same model and shapes in PyTorch: the forward pass (eager and
torch.compile), each GEMM shape (torch.matmul), the attention
(scaled_dot_product_attention) and a device-to-device copy (the bandwidth the
fused elementwise kernels, and the training step's memory-bound library
calls, are measured against). With --weft-train (the JSON
of the same model's bf16 training plan: bf16 parameters and activations, fp32
master weights and AdamW state) also a training step — forward, loss,
backward, AdamW — against PyTorch's mixed-precision recipe (fp32 parameters,
bf16 autocast, torch.optim.AdamW), eager and torch.compile. Prints a short
table last and writes everything as JSON.

  python3 bench/gpu_bench.py --config bench/configs/gpu-llama/config.json \
      --batch 1 --seq 4096 --weft results/gpu-llama-bf16.json \
      --weft-train results/gpu-llama-train-bf16.json \
      --checks results --json results/gpu_bench.json
"""
import argparse
import glob
import json
import os
import signal
import statistics
import sys

import torch


def time_ms(fn, repeat=20, warmup=3):
    """Median milliseconds of fn() on the GPU (CUDA events)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


PEER_SECONDS = 150


def measured(run, seconds=None):
    """run()'s result, or its failure as {"error": ...} after at most
    `seconds` (a peer that fails is reported, and the benchmark goes on)."""
    def give_up(signum, frame):
        raise TimeoutError(f"gave up after {seconds} s")

    signal.signal(signal.SIGALRM, give_up)
    seconds = seconds or PEER_SECONDS
    signal.alarm(seconds)
    try:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return run()
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"[:300]}
    finally:
        signal.alarm(0)
        torch.cuda.empty_cache()


def llama(config_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_pretrained(os.path.dirname(config_path))
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def forward_peers(config_path, batch, seq):
    model = llama(config_path).to(torch.bfloat16).cuda().eval()
    ids = torch.randint(0, 256, (batch, seq), device="cuda")

    def forward(compiled):
        runner = torch.compile(model) if compiled else model
        with torch.no_grad():
            ms = time_ms(lambda: runner(input_ids=ids).logits, repeat=10)
        return {"forward_ms": ms, "tokens_per_s": batch * seq / (ms / 1e3),
                "peak_bytes": torch.cuda.max_memory_allocated()}

    results = {name: measured(lambda: forward(compiled))
               for name, compiled in [("torch eager", False),
                                      ("torch.compile", True)]}
    del model
    torch.cuda.empty_cache()
    return results


def train_peers(config_path, batch, seq):
    """A training step in PyTorch: fp32 parameters under bf16 autocast, the
    causal-LM loss, backward, torch.optim.AdamW (its defaults, lr 1e-3)."""
    ids = torch.randint(0, 256, (batch, seq), device="cuda")

    def train(compiled):
        model = llama(config_path).cuda().train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        forward = torch.compile(model) if compiled else model

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = forward(input_ids=ids, labels=ids).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        ms = time_ms(step, repeat=5, warmup=2)
        return {"step_ms": ms, "tokens_per_s": batch * seq / (ms / 1e3),
                "peak_bytes": torch.cuda.max_memory_allocated()}

    return {name: measured(lambda: train(compiled))
            for name, compiled in [("torch eager", False),
                                   ("torch.compile", True)]}


def gemm_peers(profile):
    """Each distinct linear shape: weft's median time and torch.matmul's."""
    shapes = {}
    for step in profile:
        if step["what"] in ("linear", "linear_bf16"):
            rows, inner, outer = step["ints"][:3]
            key = (step["what"], rows, inner, outer)
            shapes.setdefault(key, []).append(step["ms"])
    rows_out = []
    for (what, rows, inner, outer), times in sorted(shapes.items()):
        dtype = torch.bfloat16 if what == "linear_bf16" else torch.float32
        x = torch.randn(rows, inner, device="cuda", dtype=dtype)
        w = torch.randn(outer, inner, device="cuda", dtype=dtype)
        torch_ms = time_ms(lambda: torch.matmul(x, w.t()))
        flop = 2 * rows * inner * outer
        weft_ms = statistics.median(times)
        rows_out.append({
            "shape": f"{rows}x{inner} · {outer}x{inner}ᵀ {str(dtype)[6:]}",
            "weft_ms": weft_ms, "torch_ms": torch_ms,
            "weft_tflops": flop / weft_ms / 1e9,
            "torch_tflops": flop / torch_ms / 1e9,
            "ratio": torch_ms / weft_ms,
        })
    return rows_out


def attention_peers(profile):
    out = []
    seen = set()
    for step in profile:
        if step["what"] not in ("attention", "attention_bf16"):
            continue
        batch, sq, skv, heads, kv_heads, dqk, dv, kind = step["ints"][:8]
        key = (batch, sq, skv, heads, kv_heads, dqk, dv, kind)
        if key in seen:
            continue
        seen.add(key)
        times = [s["ms"] for s in profile
                 if s["what"] == step["what"] and tuple(s["ints"][:8]) == key]
        row = {"shape": f"B{batch} S{sq} H{heads}/{kv_heads} D{dqk} "
                        f"{'causal' if kind == 1 else 'kind ' + str(kind)} "
                        f"{'bf16' if step['what'] == 'attention_bf16' else 'f32'}",
               "weft_ms": statistics.median(times)}
        for dtype in (torch.float32, torch.bfloat16):
            q = torch.randn(batch, heads, sq, dqk, device="cuda", dtype=dtype)
            k = torch.randn(batch, kv_heads, skv, dqk, device="cuda", dtype=dtype)
            v = torch.randn(batch, kv_heads, skv, dv, device="cuda", dtype=dtype)
            fn = lambda: torch.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=kind == 1, enable_gqa=True)
            row[f"sdpa_{str(dtype)[6:]}_ms"] = time_ms(fn)
        out.append(row)
    return out


def copy_bandwidth():
    """GB/s of a 1 GiB device-to-device copy (read + written)."""
    copy_bytes = 1 << 30
    x = torch.empty(copy_bytes, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    copy_ms = time_ms(lambda: y.copy_(x))
    return 2 * copy_bytes / copy_ms / 1e6


# Library calls that stream memory (no GEMM, no attention): their bandwidth
# says whether they keep the memory busy. scatter_add's and gather's buffers
# are larger than what they touch (the rows indexed), so theirs reads low.
MEMORY_CALLS = ("reduce", "grad_norm", "adamw", "rope", "copy_strided",
                "cross_entropy", "scatter_add", "gather", "concat")


def kernel_bandwidth(profile, copy_gbs, library=False):
    """Each generated kernel's (and with `library`, each memory-bound library
    call's) bandwidth: the bytes its buffers hold, read and written, over its
    median step time, against a copy's; largest total time first."""
    kernels = {}
    for step in profile:
        what = step["what"]
        if not (what.startswith("weft_cuda_") or
                (library and what.startswith(MEMORY_CALLS))):
            continue
        moved = step["bytes_read"] + step["bytes_written"]
        kernels.setdefault(what, []).append((moved, step["ms"]))
    rows = []
    for kernel, entries in kernels.items():
        ms = statistics.median(e[1] for e in entries)
        moved = statistics.median(e[0] for e in entries)
        gbs = moved / ms / 1e6 if ms > 0 else 0.0
        rows.append({"kernel": kernel, "steps": len(entries),
                     "bytes": moved, "ms": ms,
                     "total_ms": sum(e[1] for e in entries),
                     "gb_per_s": gbs, "of_copy": gbs / copy_gbs})
    rows.sort(key=lambda r: -r["total_ms"])
    return {"copy_gb_per_s": copy_gbs, "kernels": rows}


def print_bandwidth(title, bandwidth, rows=None):
    print(f"{title} vs a D2D copy ({bandwidth['copy_gb_per_s']:.0f} GB/s):")
    for k in bandwidth["kernels"][:rows]:
        print(f"  {k['kernel']:<28} ×{k['steps']:<3} {k['total_ms']:7.3f} ms "
              f"{k['gb_per_s']:7.0f} GB/s ({100 * k['of_copy']:.0f}% of copy)")


def time_by_kind(profile, whole_ms):
    """Where a plan's time goes: each step's time (profiled one by one)
    summed by what it runs — GEMMs, attention, the generated (fused)
    kernels, the optimizer, the rest by library call — largest first, and
    what the steps add up to against the whole run's time (the difference:
    launch gaps, and overlap where streams run side by side)."""
    def kind(what):
        if what.startswith(("linear", "matmul")):
            return "GEMM (cuBLASLt)"
        if what.startswith("attention"):
            return "attention"
        if what.startswith("weft_cuda_"):
            return "fused kernels"
        if what.startswith(("adamw", "grad_norm")):
            return "optimizer"
        return what
    kinds = {}
    for step in profile:
        entry = kinds.setdefault(kind(step["what"]), {"ms": 0.0, "steps": 0})
        entry["ms"] += step["ms"]
        entry["steps"] += 1
    total = sum(k["ms"] for k in kinds.values())
    return {"steps_ms": total, "whole_ms": whole_ms,
            "kinds": [{"kind": name, "ms": k["ms"], "steps": k["steps"],
                       "share": k["ms"] / total if total else 0}
                      for name, k in sorted(kinds.items(),
                                            key=lambda kv: -kv[1]["ms"])]}


def print_time_by_kind(breakdown, rows=8):
    if not breakdown["kinds"]:
        return
    print(f"  where weft's time goes: its steps one by one add up to "
          f"{breakdown['steps_ms']:.2f} ms (the whole run "
          f"{breakdown['whole_ms'] or 0:.2f} ms):")
    for k in breakdown["kinds"][:rows]:
        print(f"    {k['kind']:<22} {k['ms']:8.2f} ms {100 * k['share']:5.1f}%"
              f"  ({k['steps']} steps)")
    rest = breakdown["kinds"][rows:]
    if rest:
        print(f"    {str(len(rest)) + ' more kinds':<22} "
              f"{sum(k['ms'] for k in rest):8.2f} ms")


def memory(weft):
    """What weft's device memory holds: the plan's planned peak, cuDNN's
    workspace, and the runtime's own (cuBLASLt's workspace, tables)."""
    total, planned = weft.get("device_bytes"), weft.get("planned_peak_bytes")
    cudnn = weft.get("cudnn_workspace_bytes") or 0
    if not total or not planned:
        return ""
    return (f"(plan {planned / 2**30:.2f} + cuDNN {cudnn / 2**30:.2f} "
            f"+ runtime {(total - planned - cudnn) / 2**30:.2f} GiB)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--weft", required=True,
                        help="weft-cuda-check's JSON for the same model")
    parser.add_argument("--weft-train",
                        help="weft-cuda-check's JSON for the model's bf16 "
                             "training plan")
    parser.add_argument("--checks", help="folder of every check's JSON")
    parser.add_argument("--json", help="where to write the results")
    parser.add_argument("--peer-seconds", type=int, default=150,
                        help="give up on a PyTorch peer after this long")
    args = parser.parse_args()
    global PEER_SECONDS
    PEER_SECONDS = args.peer_seconds

    with open(args.weft) as f:
        weft = json.load(f)
    if "error" in weft:
        print(f"gpu_bench: weft did not run: {weft['error']}", file=sys.stderr)
    profile = weft.get("step_profile", [])
    report = {
        "card": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "model": args.config, "batch": args.batch, "seq": args.seq,
        "weft": {"forward_ms": weft.get("forward_ms"),
                 "tokens_per_s": weft.get("tokens_per_s"),
                 "device_bytes": weft.get("device_bytes"),
                 "planned_peak_bytes": weft.get("planned_peak_bytes"),
                 "cudnn_workspace_bytes": weft.get("cudnn_workspace_bytes")},
        "gemm": gemm_peers(profile),
        "attention": attention_peers(profile),
        "elementwise": kernel_bandwidth(profile, copy_bandwidth()),
        "time_by_kind": time_by_kind(profile, weft.get("forward_ms")),
    }
    report["peers"] = forward_peers(args.config, args.batch, args.seq)
    weft_train = {}
    if args.weft_train and os.path.exists(args.weft_train):
        with open(args.weft_train) as f:
            weft_train = json.load(f)
        report["train"] = {
            "weft": {"step_ms": weft_train.get("forward_ms"),
                     "tokens_per_s": weft_train.get("tokens_per_s"),
                     "device_bytes": weft_train.get("device_bytes"),
                     "planned_peak_bytes": weft_train.get("planned_peak_bytes"),
                     "cudnn_workspace_bytes":
                         weft_train.get("cudnn_workspace_bytes"),
                     "error": weft_train.get("error")},
            "time_by_kind": time_by_kind(weft_train.get("step_profile", []),
                                         weft_train.get("forward_ms")),
            "bandwidth": kernel_bandwidth(
                weft_train.get("step_profile", []),
                report["elementwise"]["copy_gb_per_s"], library=True),
            "peers": train_peers(args.config, args.batch, args.seq),
        }
    checks = []
    for path in sorted(glob.glob(os.path.join(args.checks or "", "*.json"))):
        with open(path) as f:
            c = json.load(f)
        if "ok" not in c:
            continue
        steps = c.get("steps", [])
        checks.append({
            "name": os.path.basename(path)[:-5],
            "ok": c["ok"],
            "error": c.get("error"),
            "steps": len(steps),
            "step_max_relative_error": max(
                (s["max_relative_error"] for s in steps), default=None),
            "forward_max_relative_error": max(
                (o["max_relative_error"] for o in c.get("outputs", {}).values()),
                default=None),
            "forward_ms": c.get("forward_ms"),
            "train_max_relative_loss_error":
                c.get("training", {}).get("max_relative_loss_error"),
        })
    report["checks"] = checks
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)

    print(f"\n=== weft GPU check on {report['card']} (torch {report['torch']}) ===")
    print("correctness against the CPU runtime (max relative error):")
    for c in checks:
        if c["error"]:
            print(f"  {c['name']:<18} ERROR {c['error'][:100]}")
            continue
        trained = c["train_max_relative_loss_error"]
        print(f"  {c['name']:<26} {'ok ' if c['ok'] else 'BAD'} "
              f"{c['steps']:4d} steps ≤ {c['step_max_relative_error'] or 0:.1e}"
              f"  run {c['forward_max_relative_error'] or 0:.1e}"
              + (f"  train losses {trained:.1e}" if trained is not None else "")
              + f"  {c['forward_ms'] or 0:8.3f} ms")
    w = report["weft"]
    print(f"forward, bf16, batch {args.batch} × seq {args.seq} "
          f"({os.path.basename(os.path.dirname(args.config))}):")
    if w["forward_ms"]:
        print(f"  weft           {w['forward_ms']:9.2f} ms  "
              f"{w['tokens_per_s']:10.0f} tok/s  "
              f"{(w['device_bytes'] or 0) / 2**30:5.2f} GiB  {memory(w)}")
    for name, peer in report["peers"].items():
        if "error" in peer:
            print(f"  {name:<14} {peer['error'][:90]}")
        else:
            ratio = (peer["forward_ms"] / w["forward_ms"]) if w["forward_ms"] else 0
            print(f"  {name:<14} {peer['forward_ms']:9.2f} ms  "
                  f"{peer['tokens_per_s']:10.0f} tok/s  "
                  f"{peer['peak_bytes'] / 2**30:5.2f} GiB  "
                  f"(weft speed ×{ratio:.2f})")
    print_time_by_kind(report["time_by_kind"])
    if "train" in report:
        t = report["train"]
        print(f"training step, bf16, batch {args.batch} × seq {args.seq} "
              "(weft: bf16 with fp32 master weights; torch: fp32 under bf16 autocast):")
        if t["weft"]["step_ms"]:
            print(f"  weft           {t['weft']['step_ms']:9.2f} ms  "
                  f"{t['weft']['tokens_per_s']:10.0f} tok/s  "
                  f"{(t['weft']['device_bytes'] or 0) / 2**30:5.2f} GiB  "
                  f"{memory(t['weft'])}")
        elif t["weft"]["error"]:
            print(f"  weft           {t['weft']['error'][:90]}")
        for name, peer in t["peers"].items():
            if "error" in peer:
                print(f"  {name:<14} {peer['error'][:90]}")
            else:
                ratio = (peer["step_ms"] / t["weft"]["step_ms"]
                         if t["weft"]["step_ms"] else 0)
                print(f"  {name:<14} {peer['step_ms']:9.2f} ms  "
                      f"{peer['tokens_per_s']:10.0f} tok/s  "
                      f"{peer['peak_bytes'] / 2**30:5.2f} GiB  "
                      f"(weft speed ×{ratio:.2f})")
        print_time_by_kind(t["time_by_kind"])
    print("GEMM (cuBLASLt vs torch.matmul):")
    for g in report["gemm"]:
        print(f"  {g['shape']:<34} weft {g['weft_tflops']:6.1f} TFLOP/s  "
              f"torch {g['torch_tflops']:6.1f}  ×{g['ratio']:.2f}")
    print("attention (weft vs scaled_dot_product_attention):")
    for a in report["attention"]:
        print(f"  {a['shape']:<30} weft {a['weft_ms']:8.3f} ms  "
              f"sdpa fp32 {a['sdpa_float32_ms']:7.3f}  "
              f"bf16 {a['sdpa_bfloat16_ms']:7.3f}")
    print_bandwidth("fused elementwise kernels of the forward",
                    report["elementwise"])
    if "train" in report:
        print_bandwidth("the training step's memory-bound kernels, most time "
                        "first,",
                        report["train"]["bandwidth"], rows=10)


if __name__ == "__main__":
    main()

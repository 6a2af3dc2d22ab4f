#!/usr/bin/env python3
"""Model-state memory and communication per rank of data-parallel training,
planned and measured, against REFERENCE.md's ZeRO formulas.

For the tiny Llama (fp32, Ψ parameters) at P = 1, 2, 4 data-parallel ranks
and ZeRO stages 0-3: the planned parameter and optimizer-state bytes per rank
(`weft compile --train --dp P --zero Z` + `weft inspect --json`) against
4Ψ + 8Ψ (stage 0), 4Ψ + 8Ψ/P (stages 1-2) and 4Ψ/P + 8Ψ/P (stage 3) —
fp32 AdamW keeps no master copy, so REFERENCE.md's 12Ψ/Nd of fp32 state
becomes 8Ψ/Nd — and the bytes each rank sent per step (`mpirun -np P weft
train`, its run summary) against the ring's 2(P−1)/P · 4Ψ of stages 0-2 and
3(P−1)/P · 4Ψ of stage 3 (the forward's and the backward's gathers and the
gradients' reduce-scatter).

Ulysses: at sp = 1, 2, 4 with N/sp fixed (32 tokens per rank) and with N
fixed, the all-to-all bytes each rank sent per layer of one training step
(forward: q, k, v and the output; backward: the output's gradient and dq,
dk, dv) against REFERENCE.md's volume, GQA-adjusted: per tensor N/P·width
elements of which (P−1)/P leave the rank, with width h for q and the output
and h·kv/heads for k and v — (2 + 2·kv/heads)·N·h/P·(P−1)/P per direction,
twice per step. With N/P fixed it stays constant as P grows (but for the
(P−1)/P).

Tensor parallelism at tp = 1, 2, 4 (batch 1 × 32): the planned parameter
bytes per rank against Ψ_whole + Ψ_split/T (Ψ_split: the column- and
row-parallel linears' weights), and the all-reduce bytes each rank sent per
layer of a step against Megatron's four all-reduces of the [b·s, h]
activations (two forward, two backward): 4 · 2(T−1)/T · b·s·h · 4 bytes.

  python3 bench/distributed.py [--steps 3] [--json bench/distributed.json]

Needs mpirun (OpenMPI); prints a table and writes JSON. A benchmark, not a
test: it never fails on a result.
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
WEFT = ROOT / "build" / "bin" / "weft"
MODEL = ROOT / "tests" / "fixtures" / "tiny-llama"
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def environment():
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_plm="isolated", OMP_NUM_THREADS="1")
    return env


def planned(work, ranks, zero, tp=1):
    plan = work / f"dp{ranks}-zero{zero}-tp{tp}.plan"
    strategy = (["--tp", str(tp)] if tp > 1 else
                ["--dp", str(ranks), "--zero", str(zero)])
    subprocess.run([str(WEFT), "compile", str(MODEL), "--train"] + strategy +
                   ["--batch", "1", "--seq", "32", "--threads", "1", "-o",
                    str(plan)], check=True, capture_output=True,
                   env=environment())
    out = subprocess.run([str(WEFT), "inspect", str(plan), "--json"],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["memory"]


def sent_per_step(work, ranks, zero, steps, sp=1, seq=32, tp=1):
    """Bytes one rank sent per step, by collective and mesh axis, from the
    run summary."""
    if ranks == 1:
        return {}
    if not (work / "corpus.bin").exists():
        subprocess.run([str(WEFT), "data", "tokenize",
                        str(ROOT / "examples/corpus/gpl-3.txt"), "-o",
                        str(work / "corpus.bin")], check=True,
                       capture_output=True)
    dp = ranks // (sp * tp)
    out = subprocess.run(
        ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none",
         str(WEFT), "train", str(MODEL), "--data", str(work / "corpus.bin"),
         "--steps", str(steps), "--batch", str(dp), "--seq", str(seq),
         "--threads", "1", "--dp", str(dp), "--sp", str(sp), "--tp",
         str(tp), "--zero", str(zero)],
        check=True, capture_output=True, text=True, env=environment())
    sent = {}
    for kind, axis, value, unit in re.findall(
            r"sent (\w+) over (\w+): ([0-9.]+) (\w+) per rank", out.stdout):
        key = kind if axis == "dp" else f"{kind} over {axis}"
        sent[key] = float(value) * UNITS[unit] / steps
    return sent


def ulysses(work, steps):
    """All-to-all bytes per rank per layer and step against the formula."""
    config = json.loads((MODEL / "config.json").read_text())
    h, layers = config["hidden_size"], config["num_hidden_layers"]
    kv_share = config["num_key_value_heads"] / config["num_attention_heads"]
    rows = []
    for label, seq_of in (("N/P = 32", lambda p: 32 * p),
                          ("N = 128", lambda p: 128)):
        for p in (1, 2, 4):
            n = seq_of(p)
            sent = sent_per_step(work, p, 0, steps, sp=p, seq=n)
            measured = sent.get("all_to_all over sp", 0.0) / layers
            formula = 2 * (2 + 2 * kv_share) * n * h / p * (p - 1) / p * 4
            rows.append({"case": label, "sp": p, "seq": n,
                         "all_to_all_per_layer": measured,
                         "formula": formula,
                         "all_reduce_per_step":
                             sent.get("all_reduce over sp", 0.0)})
    return rows


def tensor_parallel(work, steps):
    """Parameters per rank and all-reduce bytes per layer at tp = 1, 2, 4."""
    config = json.loads((MODEL / "config.json").read_text())
    h, layers = config["hidden_size"], config["num_hidden_layers"]
    inter = config["intermediate_size"]
    kv = config["num_key_value_heads"] * h // config["num_attention_heads"]
    split = layers * (2 * h * h + 2 * kv * h + 3 * h * inter)
    whole = planned(work, 1, 0)["parameters"] / 4 - split
    rows = []
    for t in (1, 2, 4):
        memory = planned(work, t, 0, tp=t)
        sent = sent_per_step(work, t, 0, steps, tp=t)
        rows.append({
            "tp": t, "parameters": memory["parameters"],
            "parameters_formula": 4 * (whole + split / t),
            "all_reduce_per_layer": sent.get("all_reduce over tp", 0.0) / layers,
            "formula": 4 * 2 * (t - 1) / t * 1 * 32 * h * 4})
    return rows


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json", default="bench/distributed.json")
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="weft-dist-"))
    base = planned(work, 1, 0)
    psi = base["parameters"] / 4  # fp32 parameters, 64-byte aligned each
    rows = []
    for ranks in (1, 2, 4):
        for zero in (0, 1, 2, 3):
            if ranks == 1 and zero > 0:
                continue
            memory = planned(work, ranks, zero)
            state_formula = 8 * psi / (ranks if zero else 1)
            params_formula = 4 * psi / (ranks if zero == 3 else 1)
            sent = sent_per_step(work, ranks, zero, args.steps)
            ring = (3 if zero == 3 else 2) * (ranks - 1) / ranks * 4 * psi
            rows.append({
                "ranks": ranks, "zero": zero,
                "parameters": memory["parameters"],
                "parameters_formula": params_formula,
                "state": memory["state"], "state_formula": state_formula,
                "peak": memory["peak"],
                "sent_per_step": sent,
                "sent_total_per_step": sum(sent.values()),
                "ring_formula": ring})
    mib = 1 << 20
    print(f"tiny Llama, Ψ = {psi:,.0f} parameters (fp32)\n")
    print(f"{'P':>2} {'ZeRO':>4} | {'params MiB':>10} {'formula':>8} "
          f"{'state MiB':>9} {'formula':>8} | {'peak MiB':>8} | "
          f"{'sent/step MiB':>13} {'k(P-1)/P·4Ψ':>12}")
    for r in rows:
        print(f"{r['ranks']:>2} {r['zero']:>4} | {r['parameters'] / mib:>10.2f} "
              f"{r['parameters_formula'] / mib:>8.2f} "
              f"{r['state'] / mib:>9.2f} {r['state_formula'] / mib:>8.2f} | "
              f"{r['peak'] / mib:>8.2f} | "
              f"{r['sent_total_per_step'] / mib:>13.2f} "
              f"{r['ring_formula'] / mib:>12.2f}")
    uly = ulysses(work, args.steps)
    kib = 1 << 10
    print("\nUlysses (tiny Llama, fp32, batch 1): all-to-all bytes per rank, "
          "per layer and training step")
    print(f"{'case':>9} {'sp':>2} {'N':>4} | {'measured KiB':>12} "
          f"{'formula KiB':>11} | {'grad all-reduce MiB/step':>24}")
    for r in uly:
        print(f"{r['case']:>9} {r['sp']:>2} {r['seq']:>4} | "
              f"{r['all_to_all_per_layer'] / kib:>12.1f} "
              f"{r['formula'] / kib:>11.1f} | "
              f"{r['all_reduce_per_step'] / mib:>24.2f}")
    tp = tensor_parallel(work, args.steps)
    print("\nTensor parallelism (tiny Llama, fp32, batch 1 × 32): parameters "
          "per rank, all-reduce bytes per rank per layer and step")
    print(f"{'tp':>2} | {'params MiB':>10} {'formula':>8} | "
          f"{'measured KiB':>12} {'formula KiB':>11}")
    for r in tp:
        print(f"{r['tp']:>2} | {r['parameters'] / mib:>10.2f} "
              f"{r['parameters_formula'] / mib:>8.2f} | "
              f"{r['all_reduce_per_layer'] / kib:>12.1f} "
              f"{r['formula'] / kib:>11.1f}")
    with open(args.json, "w") as f:
        json.dump({"model": "tiny-llama", "psi": psi, "rows": rows,
                   "ulysses": uly, "tensor_parallel": tp}, f, indent=1)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""weft and DeepSpeed side by side: ZeRO and Ulysses on CPU ranks, same
model and data.

The tiny Llama (fp32, its committed weights) trains STEPS steps of batch 4 ×
32 tokens of the built-in corpus (sequential samples, the same ones in both)
with torch's AdamW defaults (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay
0.01) on 2 ranks: data parallel with ZeRO stages 2 and 3, and Ulysses
sequence parallelism (sp = 2) with ZeRO 0 and 3:

- weft: `mpirun -np 2 weft train ... --dp 2 --zero Z` or `--sp 2 --zero Z`
  (OpenMPI);
- DeepSpeed: `torchrun --nproc_per_node 2` of this script's worker, the
  Hugging Face model under `deepspeed.initialize` with
  zero_optimization.stage Z, gloo, DS_ACCELERATOR=cpu. Ulysses is
  DeepSpeed's ALST integration with Hugging Face
  (`UlyssesSPAttentionHF.register_with_transformers`, sdpa attention,
  `sequence_parallel_size` 2): each rank feeds its half of every sample with
  its global position ids and labels shifted before the split, and the loss
  is the ranks' summed token losses over the group's count of targets
  (a differentiable all-gather), as DeepSpeed's ALST recipe does.

Prints each configuration's losses against each other (max relative
difference) and the median step time of each, and writes JSON. Needs
`pip install torch transformers deepspeed` and mpirun. A benchmark: it never
fails on a result.

  python3 bench/deepspeed_zero.py [--steps 20] [--json bench/deepspeed_zero.json]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
WEFT = ROOT / "build" / "bin" / "weft"
MODEL = ROOT / "tests" / "fixtures" / "tiny-llama"
BATCH, SEQ, RANKS = 4, 32, 2


def environment():
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_plm="isolated", OMP_NUM_THREADS="1",
               DS_ACCELERATOR="cpu")
    return env


def worker(args):
    """One DeepSpeed rank (under torchrun)."""
    if args.sp > 1:
        return ulysses_worker(args)
    import time

    import deepspeed
    import numpy
    import torch
    from transformers import AutoModelForCausalLM

    deepspeed.init_distributed(dist_backend="gloo")
    rank = torch.distributed.get_rank()
    world = torch.distributed.get_world_size()
    torch.set_num_threads(1)
    tokens = numpy.fromfile(args.corpus, dtype=numpy.uint16).astype(numpy.int64)
    samples = len(tokens) // SEQ
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999),
                                  eps=1e-8, weight_decay=0.01)
    micro = BATCH // world
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer,
        config={"train_batch_size": BATCH,
                "train_micro_batch_size_per_gpu": micro,
                # DeepSpeed clips at 1.0 unless told (weft and torch do
                # not by default).
                "gradient_clipping": 0.0,
                "zero_optimization": {"stage": args.stage}})
    log = []
    for step in range(args.steps):
        # weft's sequential order: sample (step·batch + b) mod samples; rank
        # r takes its contiguous share.
        ids = [((step * BATCH + rank * micro + b) % samples) for b in range(micro)]
        batch = torch.tensor(numpy.stack(
            [tokens[i * SEQ:(i + 1) * SEQ] for i in ids]))
        start = time.perf_counter()
        loss = engine(input_ids=batch, labels=batch).loss
        engine.backward(loss)
        engine.step()
        seconds = time.perf_counter() - start
        # The step's loss: the mean of the ranks' (each a mean over equal
        # token counts), as weft reports it.
        mean = loss.detach().clone()
        torch.distributed.all_reduce(mean)
        log.append({"step": step + 1, "loss": float(mean) / world,
                    "seconds": seconds})
    if rank == 0:
        pathlib.Path(args.out).write_text(json.dumps(log))


def ulysses_worker(args):
    """One DeepSpeed rank of Ulysses (ALST under Hugging Face)."""
    import time

    import deepspeed
    import numpy
    import torch
    from deepspeed.runtime.sequence_parallel.ulysses_sp import \
        UlyssesSPAttentionHF
    from torch.distributed.nn.functional import all_gather
    from transformers import AutoModelForCausalLM

    deepspeed.init_distributed(dist_backend="gloo")
    torch.set_num_threads(1)
    mpu = UlyssesSPAttentionHF.register_with_transformers(
        model_name_or_path=str(MODEL), core_attn_implementation="sdpa",
        sequence_parallel_size=args.sp, micro_batch_size=BATCH,
        seq_length=SEQ, seq_length_is_variable=False)
    group = mpu.get_sequence_parallel_group()
    sp_rank = torch.distributed.get_rank(group)
    tokens = numpy.fromfile(args.corpus, dtype=numpy.uint16).astype(numpy.int64)
    samples = len(tokens) // SEQ
    model = AutoModelForCausalLM.from_pretrained(
        MODEL, dtype=torch.float32, attn_implementation="sdpa")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999),
                                  eps=1e-8, weight_decay=0.01)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, mpu=mpu,
        config={"train_batch_size": BATCH,
                "train_micro_batch_size_per_gpu": BATCH,
                "sequence_parallel_size": args.sp,
                "gradient_clipping": 0.0,
                "zero_optimization": {"stage": args.stage}})
    local = SEQ // args.sp
    begin, end = sp_rank * local, (sp_rank + 1) * local
    log = []
    for step in range(args.steps):
        ids = [((step * BATCH + b) % samples) for b in range(BATCH)]
        whole = torch.tensor(numpy.stack(
            [tokens[i * SEQ:(i + 1) * SEQ] for i in ids]))
        # Labels shifted before the split: each position's own target.
        shifted = torch.cat([whole[:, 1:],
                             torch.full((BATCH, 1), -100)], dim=1)
        positions = torch.arange(begin, end).expand(BATCH, local)
        start = time.perf_counter()
        logits = engine(input_ids=whole[:, begin:end],
                        position_ids=positions).logits
        labels = shifted[:, begin:end]
        total = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
            ignore_index=-100, reduction="sum")
        count = (labels != -100).sum()
        sums = all_gather(total, group=group)
        counts = all_gather(count, group=group)
        loss = sum(sums) / max(sum(counts), 1)
        engine.backward(loss)
        engine.step()
        seconds = time.perf_counter() - start
        log.append({"step": step + 1, "loss": float(loss), "seconds": seconds})
    if torch.distributed.get_rank() == 0:
        pathlib.Path(args.out).write_text(json.dumps(log))


def deepspeed_run(work, stage, steps, sp):
    out = work / f"deepspeed-zero{stage}-sp{sp}.json"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
         str(RANKS), str(pathlib.Path(__file__).resolve()), "--worker",
         "--stage", str(stage), "--sp", str(sp), "--steps", str(steps),
         "--corpus", str(work / "corpus.bin"), "--out", str(out)],
        capture_output=True, text=True, env=environment())
    if result.returncode != 0:
        return None, result.stderr[-2000:]
    return json.loads(out.read_text()), ""


def weft_run(work, stage, steps, sp):
    log = work / f"weft-zero{stage}-sp{sp}.jsonl"
    if log.exists():
        log.unlink()
    result = subprocess.run(
        ["mpirun", "-np", str(RANKS), "--oversubscribe", "--bind-to", "none",
         str(WEFT), "train", str(MODEL), "--data", str(work / "corpus.bin"),
         "--steps", str(steps), "--batch", str(BATCH), "--seq", str(SEQ),
         "--data-order", "sequential", "--threads", "1", "--dp",
         str(RANKS // sp), "--sp", str(sp), "--zero", str(stage), "--log",
         str(log)],
        capture_output=True, text=True, env=environment())
    if result.returncode != 0:
        return None, result.stderr[-2000:]
    rows = [json.loads(line) for line in log.read_text().splitlines() if line]
    return rows, ""


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", default="bench/deepspeed_zero.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sp", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    work = pathlib.Path(tempfile.mkdtemp(prefix="weft-ds-"))
    subprocess.run([str(WEFT), "data", "tokenize",
                    str(ROOT / "examples/corpus/gpl-3.txt"), "-o",
                    str(work / "corpus.bin")], check=True, capture_output=True)
    results = []
    print(f"tiny Llama, fp32, {RANKS} CPU ranks, batch {BATCH} × {SEQ}, "
          f"{args.steps} steps\n")
    print(f"{'strategy':<16} | {'max rel. loss diff':>18} | {'weft s/step':>11} "
          f"{'DeepSpeed s/step':>16} {'DS / weft':>9}")
    for sp, stage in ((1, 2), (1, 3), (2, 0), (2, 3)):
        name = (f"dp=2 ZeRO-{stage}" if sp == 1 else
                f"sp=2 ZeRO-{stage}")
        ours, error = weft_run(work, stage, args.steps, sp)
        if ours is None:
            print(f"{name:<16} | weft failed: {error}")
            continue
        theirs, error = deepspeed_run(work, stage, args.steps, sp)
        if theirs is None:
            print(f"{name:<16} | DeepSpeed failed: {error}")
            continue
        diff = max(abs(a["loss"] - b["loss"]) / abs(b["loss"])
                   for a, b in zip(ours, theirs))
        # The first step warms caches (and compiles nothing in either);
        # weft's log has the step's tokens per second (the global batch).
        weft_s = statistics.median(BATCH * SEQ / r["tokens_per_s"]
                                   for r in ours[1:])
        ds_s = statistics.median(r["seconds"] for r in theirs[1:])
        print(f"{name:<16} | {diff:>18.2e} | {weft_s:>11.4f} {ds_s:>16.4f} "
              f"{ds_s / weft_s:>9.2f}")
        results.append({"strategy": name, "dp": RANKS // sp, "sp": sp,
                        "zero": stage, "max_rel_loss_diff": diff,
                        "weft_losses": [r["loss"] for r in ours],
                        "deepspeed_losses": [r["loss"] for r in theirs],
                        "weft_median_step_s": weft_s,
                        "deepspeed_median_step_s": ds_s})
    with open(args.json, "w") as f:
        json.dump({"model": "tiny-llama", "ranks": RANKS, "batch": BATCH,
                   "seq": SEQ, "steps": args.steps, "rows": results}, f,
                  indent=1)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

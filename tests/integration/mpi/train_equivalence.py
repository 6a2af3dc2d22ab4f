#!/usr/bin/env python3
"""Multi-rank training under mpirun against the single-rank run (ctest).

The tiny Llama trains 20 steps on the built-in corpus (sequential samples,
fp32) on one rank, then under `mpirun -np N weft train ... --dp N`: every
configuration (data parallelism, ZeRO-1/2/3, Ulysses sequence parallelism
alone and with dp and ZeRO, tensor parallelism (column/row-parallel linears)
alone and with dp, ZeRO-3 under rematerialisation, a GQA model with more sp ranks than kv heads, a
sequence that sp does not divide, and checkpoints crossing between a
multi-rank run and a single-rank one) must give the single-rank losses within
1e-5 relative and the
same final weights: each tensor within 2e-5 in relative L2 norm (AdamW's
update is nearly sign(g)·lr for gradients near zero, so the rounding of a
different summation order flips a handful of elements of the 3.2 million by
up to 2·lr; their count is printed). Then:
a rank killed mid-run ends the whole job within seconds, and a plan for
2 ranks is refused by a launch of 1 — never a hang.

  train_equivalence.py --weft build/bin/weft --source . [--work DIR]

Standard library only (safetensors are read by hand). Prints the matrix.
"""
import argparse
import json
import os
import pathlib
import signal
import struct
import subprocess
import sys
import tempfile
import time

LOSS_TOLERANCE = 1e-5
WEIGHT_TOLERANCE = 2e-5  # relative L2 per tensor
STEPS = 20  # 10 under --quick
# --quick (under AddressSanitizer, where each run is several times slower):
# every collective, ZeRO stage, Ulysses path and checkpoint crossing once.
QUICK = {"dp=2, 2 micro-batches", "dp=2 ZeRO-3", "dp=2 ZeRO-3, full remat",
         "dp=2 ZeRO-3, 2 micro-batches", "1 rank from ZeRO-3 dp=2",
         "dp=2×sp=2 ZeRO-2", "sp=2 from 1 rank", "tp=2", "tp=2 from 1 rank"}


def mpirun(ranks):
    return ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to",
            "none"]


def environment():
    env = dict(os.environ)
    # CI runs as root; OpenMPI refuses that unless told.
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    # One machine: start the ranks directly, with no ssh/rsh agent.
    env["OMPI_MCA_plm"] = "isolated"
    env["OMP_NUM_THREADS"] = "1"
    return env


def losses(log):
    with open(log) as f:
        return [json.loads(line)["loss"] for line in f if line.strip()]


def tensors(path):
    """name -> list of floats of an F32 or BF16 safetensors file."""
    data = pathlib.Path(path).read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[8 + size + begin:8 + size + end]
        if info["dtype"] == "BF16":  # the upper half of an f32
            halves = struct.unpack("<%dH" % (len(raw) // 2), raw)
            raw = struct.pack("<%dI" % len(halves), *(h << 16 for h in halves))
        else:
            assert info["dtype"] == "F32", (name, info["dtype"])
        out[name] = struct.unpack("<%df" % (len(raw) // 4), raw)
    return out


def train(args, work, name, ranks, extra=(), model="tiny-llama", seq=32,
          batch=4):
    log = work / f"{name}.jsonl"
    if log.exists():
        log.unlink()
    command = ([] if ranks == 1 else mpirun(ranks)) + [
        args.weft, "train", str(args.source / "tests/fixtures" / model),
        "--data", str(work / "corpus.bin"), "--steps", str(STEPS),
        "--batch", str(batch), "--seq", str(seq), "--data-order", "sequential",
        "--threads", "1", "--log", str(log), "--save-dir",
        str(work / name), "--save-every", str(STEPS // 2)] + list(extra)
    if ranks > 1 and not {"--sp", "--tp", "--config"} & set(extra):
        command += ["--dp", str(ranks)]
    result = subprocess.run(command, env=environment(), capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        sys.exit(f"{name}: weft train failed ({result.returncode}):\n"
                 f"{result.stdout}\n{result.stderr}")
    return losses(log), tensors(work / name / f"step-{STEPS}" /
                                "model.safetensors"), result.stdout


def ds_config(work, name, config):
    path = work / f"ds-{name}.json"
    path.write_text(json.dumps(config))
    return path


def killed_rank_ends_the_job(args, work):
    """Kills one of two ranks mid-run: mpirun must end within seconds."""
    log = work / "killed.jsonl"
    if log.exists():
        log.unlink()
    command = mpirun(2) + [
        args.weft, "train", str(args.source / "tests/fixtures/tiny-llama"),
        "--data", str(work / "corpus.bin"), "--steps", "100000", "--batch",
        "4", "--seq", "32", "--threads", "1", "--log", str(log)]
    job = subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and
                                          log.stat().st_size > 0):
        time.sleep(0.2)
    victims = [int(p) for p in os.listdir("/proc") if p.isdigit()
               and b"killed.jsonl" in pathlib.Path(f"/proc/{p}/cmdline")
               .read_bytes() and int(p) != job.pid]
    if not victims:
        job.kill()
        sys.exit("kill test: no weft rank found running")
    os.kill(max(victims), signal.SIGKILL)
    killed_at = time.time()
    try:
        output, _ = job.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        job.kill()
        sys.exit("kill test: the job still runs 30 s after a rank died")
    seconds = time.time() - killed_at
    if job.returncode == 0:
        sys.exit("kill test: mpirun exited 0 after a rank was killed")
    print(f"a killed rank ended the job in {seconds:.1f} s "
          f"(exit {job.returncode})")


def trace_counts_bytes(args, work):
    """One step of dp=2 x sp=2 ZeRO-3 traced: the trace's bytes per kind and
    group add up to the run summary's, and every collective step has its
    bytes in its arguments."""
    trace = work / "trace.json"
    command = mpirun(4) + [
        args.weft, "train", str(args.source / "tests/fixtures/tiny-llama"),
        "--data", str(work / "corpus.bin"), "--steps", "1", "--batch", "4",
        "--seq", "32", "--threads", "1", "--dp", "2", "--sp", "2", "--zero",
        "3", "--trace", str(trace)]
    result = subprocess.run(command, env=environment(), capture_output=True,
                            text=True, timeout=300)
    if result.returncode != 0:
        sys.exit(f"traced run failed:\n{result.stdout}\n{result.stderr}")
    units = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}
    summary = {}
    for line in result.stdout.splitlines():
        if line.startswith("sent ") and line.endswith(" per rank"):
            what, amount = line[:-len(" per rank")].rsplit(": ", 1)
            value, unit = amount.split()
            # printed to a tenth of its unit
            summary[what] = (float(value) * units[unit], 0.05 * units[unit])
    data = json.loads(trace.read_text())
    totals = {k[:-len(" (bytes)")]: v for k, v in data["otherData"].items()}
    steps = {}
    for event in data["traceEvents"]:
        for key, value in event.get("args", {}).items():
            if event.get("ph") == "X" and key.endswith(" (bytes)"):
                steps[key[:-len(" (bytes)")]] = (
                    steps.get(key[:-len(" (bytes)")], 0) + value)
    expected = {"sent all_to_all over sp", "sent all_gather over dp,sp",
                "sent reduce_scatter over dp,sp"}
    if (not expected <= set(totals) or steps != totals
            or set(summary) != set(totals)
            or any(abs(summary[k][0] - totals[k]) > summary[k][1] + 1
                   for k in totals)):
        sys.exit(f"trace bytes {totals} (steps {steps}) differ from the "
                 f"run summary {summary}")
    print("the trace's bytes per collective and group match the summary:",
          ", ".join(f"{k[5:]} {v}" for k, v in sorted(totals.items())))


def mismatched_launch_is_refused(args, work):
    plan = work / "dp2.plan"
    subprocess.run([args.weft, "compile", str(args.source /
                    "tests/fixtures/tiny-llama"), "--train", "--dp", "2",
                    "--seq", "16", "--threads", "1", "-o", str(plan)],
                   check=True, capture_output=True, env=environment())
    result = subprocess.run([args.weft, "run", str(plan)], capture_output=True,
                            text=True, env=environment(), timeout=60)
    expected = "has 2 ranks, this launch has 1 (run it under mpirun -np 2)"
    if result.returncode == 0 or expected not in result.stderr:
        sys.exit(f"mismatched launch: expected '{expected}', got "
                 f"{result.returncode}: {result.stderr}")
    print("a plan for 2 ranks under 1:", result.stderr.strip())


def compare(name, reference, weights, result):
    """Prints one row of the matrix; True when within the tolerances."""
    got, got_weights, _ = result
    expected = reference[len(reference) - len(got):]
    loss_diff = max(abs(a - b) / abs(b) for a, b in zip(got, expected))
    weight_diff, off, total = 0.0, 0, 0
    for tensor, values in weights.items():
        other = got_weights[tensor]
        norm = sum(v * v for v in values) ** 0.5 or 1.0
        diff = sum((a - b) ** 2 for a, b in zip(values, other)) ** 0.5
        weight_diff = max(weight_diff, diff / norm)
        off += sum(1 for a, b in zip(values, other) if abs(a - b) > 1e-5)
        total += len(values)
    ok = (len(got) in (STEPS, STEPS - STEPS // 2)
          and loss_diff <= LOSS_TOLERANCE
          and weight_diff <= WEIGHT_TOLERANCE)
    print(f"{name:<28}{loss_diff:>20.2e}{weight_diff:>18.2e}"
          f"{f'{off} of {total}':>22}{'' if ok else '   FAILED'}")
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weft", required=True)
    parser.add_argument("--source", required=True, type=pathlib.Path)
    parser.add_argument("--work", type=pathlib.Path)
    parser.add_argument("--quick", action="store_true",
                        help="each code path once (the sanitizer build's run)")
    parser.add_argument("--only", default="",
                        help="only the configurations whose name has this")
    args = parser.parse_args()
    global STEPS
    if args.quick:  # the sanitizer's run: each path, fewer steps
        STEPS = 10
    work = args.work or pathlib.Path(tempfile.mkdtemp(prefix="weft-mpi-"))
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([args.weft, "data", "tokenize",
                    str(args.source / "examples/corpus/gpl-3.txt"), "-o",
                    str(work / "corpus.bin")], check=True,
                   capture_output=True)

    reference, weights, _ = train(args, work, "single", 1)
    failed = False
    print(f"{'configuration':<28}{'max rel. loss diff':>20}"
          f"{'weights rel. L2':>18}{'elements off > 1e-5':>22}")
    single = work / "single"
    for name, ranks, extra in [
            ("dp=2", 2, ()), ("dp=4", 4, ()),
            ("dp=2, 2 micro-batches", 2, ("--grad-accum", "2")),
            ("dp=2 ZeRO-1", 2, ("--zero", "1")),
            ("dp=2 ZeRO-2", 2, ("--zero", "2")),
            ("dp=4 ZeRO-1", 4, ("--zero", "1")),
            ("dp=4 ZeRO-2", 4, ("--zero", "2")),
            ("dp=2 ZeRO-3", 2, ("--zero", "3")),
            ("dp=2 ZeRO-3, 2 micro-batches", 2,
             ("--zero", "3", "--grad-accum", "2")),
            ("dp=4 ZeRO-3", 4, ("--zero", "3")),
            # Recomputation gathers the parameters it reads again.
            ("dp=2 ZeRO-3, full remat", 2, ("--zero", "3", "--remat", "full")),
            ("dp=2×sp=2 ZeRO-3, mincut", 4,
             ("--dp", "2", "--sp", "2", "--zero", "3", "--remat", "mincut")),
            ("1 rank from ZeRO-3 dp=2", 1,
             ("--resume", str(work / "dp2ZeRO-3" / f"step-{STEPS // 2}"))),
            ("ZeRO-2 dp=2 from 1 rank", 2,
             ("--zero", "2", "--resume", str(single / f"step-{STEPS // 2}"))),
            # Ulysses: the sequence split over sp, attention by heads.
            ("sp=2", 2, ("--sp", "2")), ("sp=4", 4, ("--sp", "4")),
            ("dp=2×sp=2", 4, ("--dp", "2", "--sp", "2")),
            ("dp=2×sp=2 ZeRO-1", 4, ("--dp", "2", "--sp", "2", "--zero", "1")),
            ("dp=2×sp=2 ZeRO-2", 4, ("--dp", "2", "--sp", "2", "--zero", "2")),
            ("dp=2×sp=2 ZeRO-3", 4, ("--dp", "2", "--sp", "2", "--zero", "3")),
            ("sp=2 ZeRO-1", 2, ("--sp", "2", "--zero", "1")),
            ("sp=2 ZeRO-2", 2, ("--sp", "2", "--zero", "2")),
            ("sp=2 ZeRO-3", 2, ("--sp", "2", "--zero", "3")),
            ("sp=4 ZeRO-1", 4, ("--sp", "4", "--zero", "1")),
            ("sp=4 ZeRO-2", 4, ("--sp", "4", "--zero", "2")),
            ("sp=4 ZeRO-3", 4, ("--sp", "4", "--zero", "3")),
            ("sp=2 from 1 rank", 2,
             ("--sp", "2", "--resume", str(single / f"step-{STEPS // 2}"))),
            # Tensor parallelism: column- and row-parallel linears.
            ("tp=2", 2, ("--tp", "2")), ("tp=4", 4, ("--tp", "4")),
            ("dp=2×tp=2", 4, ("--dp", "2", "--tp", "2")),
            ("tp=2, 2 micro-batches", 2, ("--tp", "2", "--grad-accum", "2")),
            ("tp=2 from 1 rank", 2,
             ("--tp", "2", "--resume", str(single / f"step-{STEPS // 2}"))),
            # ALST's tiled logits and loss, tiles of unequal size.
            ("dp=2 ZeRO-1, tiled loss", 2, ("--zero", "1", "--loss-tiles", "3")),
            ("dp=2×tp=2, tiled loss", 4,
             ("--dp", "2", "--tp", "2", "--loss-tiles", "3")),
            # The strategy from DeepSpeed's keys instead of flags.
            ("ds_config sp=2 ZeRO-3", 2, ("--config", str(ds_config(
                work, "sp2-zero3", {"sequence_parallel_size": 2,
                                    "zero_optimization": {"stage": 3}})))),
            ("ds_config autotp=2", 2, ("--config", str(ds_config(
                work, "autotp2", {"tensor_parallel": {"autotp_size": 2}}))))]:
        if (args.quick and name not in QUICK) or args.only not in name:
            continue
        tag = (name.replace("=", "").replace(", ", "-").replace(" ", "")
               .replace(",", "").replace("×", "x"))
        result = train(args, work, tag, ranks, extra)
        stdout = result[2]
        failed |= not compare(name, reference, weights, result)
        if ranks > 1 and "sent " not in stdout:
            sys.exit(f"{name}: the run summary has no byte count:\n{stdout}")
        # ZeRO-3's checkpoints gather the parameter blocks: the summary
        # counts those bytes apart from the training's collectives.
        flags = dict(zip(extra[::2], extra[1::2]))
        if (flags.get("--zero") == "3"
                and "checkpoints gathered their sharded tensors" not in stdout):
            sys.exit(f"{name}: the summary does not count the checkpoints' "
                     f"gathers apart:\n{stdout}")
    # bf16 parameters (fp32 master weights in the ZeRO blocks, bf16 weights
    # gathered): the rounding of bf16 activations moves with the summation
    # order, so the losses are held to 1e-3, as bf16 tracks fp32.
    bf16 = ("--precision", "bf16")
    bf16_reference, _, _ = train(args, work, "single-bf16", 1, bf16)
    bf16_runs = [("dp=2 ZeRO-3", ("--zero", "3"))]
    if not args.quick:
        bf16_runs += [("tp=2", ("--tp", "2"))]
    for name, extra in bf16_runs:
        tag = name.replace("=", "").replace(" ", "-")
        got, _, _ = train(args, work, f"{tag}-bf16", 2, bf16 + extra)
        bf16_diff = max(abs(a - b) / abs(b)
                        for a, b in zip(got, bf16_reference))
        print(f"{f'{name} bf16 (vs bf16)':<28}{bf16_diff:>20.2e}"
              f"{'' if bf16_diff <= 1e-3 else '   FAILED'}")
        failed |= bf16_diff > 1e-3
    # GQA with more sp ranks than key/value heads (tiny Llama 3: 4 heads,
    # 2 kv heads; sp = 4 repeats each kv head twice).
    gqa_reference, gqa_weights, _ = train(args, work, "llama3-single", 1,
                                          model="tiny-llama3")
    failed |= not compare("GQA sp=4 > kv=2", gqa_reference, gqa_weights,
                          train(args, work, "llama3-sp4", 4, ("--sp", "4"),
                                model="tiny-llama3"))
    if not args.quick:  # 4 heads, 2 kv heads: one kv head per tp rank
        failed |= not compare("GQA tp=2", gqa_reference, gqa_weights,
                              train(args, work, "llama3-tp2", 2,
                                    ("--tp", "2"), model="tiny-llama3"))
    # dp = 3: no parameter of 256 features splits evenly, so every ZeRO
    # block is padded with zeros past its tensor's end (as DeepSpeed pads
    # its flat buffers); batch 6 for three ranks.
    three_reference, three_weights, _ = train(args, work, "batch6-single", 1,
                                              batch=6)
    for stage in ("3",) if args.quick else ("1", "3"):
        failed |= not compare(f"dp=3 ZeRO-{stage} (padded)", three_reference,
                              three_weights,
                              train(args, work, f"dp3-zero{stage}", 3,
                                    ("--zero", stage), batch=6))
    # 30 tokens over sp = 4: padded to 32 at the end (no targets there, and
    # causal attention keeps them from every real token).
    odd_reference, odd_weights, _ = train(args, work, "seq30-single", 1,
                                          seq=30)
    failed |= not compare("N=30 over sp=4 (padded)", odd_reference,
                          odd_weights, train(args, work, "seq30-sp4", 4,
                                             ("--sp", "4"), seq=30))
    trace_counts_bytes(args, work)
    killed_rank_ends_the_job(args, work)
    mismatched_launch_is_refused(args, work)
    if failed:
        sys.exit("a multi-rank run differs from the single-rank one")


if __name__ == "__main__":
    main()

"""Forward + backward time of the top-k SVM losses against cross-entropy.

For each batch size ``n``, number of classes ``C`` and ``k`` (float32 scores,
``tau = 1``, ``margin = 1``), every method runs one forward and one backward
pass; the methods are interleaved, in a rotating order, so that machine noise
hits them alike, and each time is the median over repeats (at least
``--min-repeats``, more while the cell's time budget lasts). Each ratio divides
by the median of ``torch.nn.functional.cross_entropy`` measured in the same
cell of the same run.

Methods: ``cross_entropy`` (the baseline), ``smooth_topk_svm`` (sktopk) and
``topk_svm`` (the hard loss). The table also gives the number of aten
operator calls of one step (forward + backward, from ``torch.profiler``,
nested calls included) and, with ``--memory``, the peak extra memory of one
step (on CPU from the allocator events ``torch.profiler`` records, on CUDA
``torch.cuda.max_memory_allocated``).

For reference, the published implementation (Berrada et al.) measures about
200x cross-entropy at C = 1000 (n = 256, k = 5).

Usage::

    python benchmarks/bench_topk_svm.py                     # the full grid
    python benchmarks/bench_topk_svm.py --quick             # a smaller budget
    python benchmarks/bench_topk_svm.py --batch 16 --k 5 --classes 10 100
    python benchmarks/bench_topk_svm.py --markdown t.md     # also a Markdown table
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from sktopk.losses import smooth_topk_svm, topk_svm
from sktopk.losses._native import describe


def methods(k: int) -> dict:
    return {
        "cross_entropy": lambda s, y: F.cross_entropy(s, y),
        "smooth_topk_svm": lambda s, y: smooth_topk_svm(s, y, k, 1.0, 1.0),
        "topk_svm": lambda s, y: topk_svm(s, y, k, 1.0),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(fn, scores, labels) -> None:
    scores.grad = None
    fn(scores, labels).backward()


def aten_calls(fn, scores, labels) -> int:
    """aten operator calls of one forward + backward (nested ones included)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _step(fn, scores, labels)
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def peak_extra_bytes(fn, scores, labels, device) -> int:
    """Largest memory held at once by one forward + backward, beyond its inputs."""
    scores.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        _step(fn, scores, labels)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _step(fn, scores, labels)
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def bench_cell(
    n, n_classes, k, device, budget, min_repeats, memory, clock
) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(n, n_classes, generator=gen).to(device).requires_grad_(True)
    labels = torch.randint(0, n_classes, (n,), generator=gen).to(device)
    table = methods(k)
    names = list(table)
    for fn in table.values():  # warm-up (caches, allocator, thread pool)
        for _ in range(5):
            _step(fn, scores, labels)
    times = {name: [] for name in names}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_repeats or time.perf_counter() - start < budget:
        order = names[rounds % len(names) :] + names[: rounds % len(names)]
        for name in order:
            _sync(device)
            t0 = clock()
            _step(table[name], scores, labels)
            _sync(device)
            times[name].append(clock() - t0)
        rounds += 1
    base = statistics.median(times["cross_entropy"])
    rows = []
    for name in names:
        med = statistics.median(times[name])
        row = {
            "device": device.type,
            "n": n,
            "C": n_classes,
            "k": k,
            "method": name,
            "median_us": 1e6 * med,
            "x_ce": med / base,
            "repeats": rounds,
            "aten_calls": aten_calls(table[name], scores, labels),
        }
        if memory:
            row["peak_MiB"] = (
                peak_extra_bytes(table[name], scores, labels, device) / 2**20
            )
        rows.append(row)
    return rows


def to_markdown(df: pd.DataFrame) -> str:
    columns = ["device", "n", "C", "k", "method", "median us", "x CE", "aten calls"]
    memory = "peak_MiB" in df
    if memory:
        columns.append("peak MiB")
    lines = ["| " + " | ".join(columns) + " |"]
    lines.append("|" + "|".join(["---"] * 5 + ["---:"] * (len(columns) - 5)) + "|")
    for r in df.itertuples(index=False):
        cells = [r.device, r.n, r.C, r.k, r.method, f"{r.median_us:.0f}"]
        cells += [f"{r.x_ce:.2f}", r.aten_calls]
        if memory:
            cells.append(f"{r.peak_MiB:.3g}")
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller time budget")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--no-cuda", action="store_true", help="CPU only")
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 256])
    parser.add_argument(
        "--classes", type=int, nargs="+", default=[10, 100, 1000, 10000]
    )
    parser.add_argument("--k", type=int, nargs="+", default=[5, 1])
    parser.add_argument(
        "--budget", type=float, default=3.0, help="seconds of timing per cell"
    )
    parser.add_argument("--min-repeats", type=int, default=30)
    parser.add_argument("--memory", action="store_true", help="also peak memory")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall-clock time, or the process's CPU time (all its threads), which "
        "time spent waiting for a shared machine's cores does not inflate",
    )
    parser.add_argument(
        "--markdown",
        nargs="?",
        const="-",
        metavar="PATH",
        help="also write the table as Markdown, to PATH or (without one) stdout",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    budget = args.budget / 4 if args.quick else args.budget
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append(torch.device("cuda"))
    rows = [
        row
        for device in devices
        for k in args.k
        for n in args.batch
        for c in args.classes
        for row in bench_cell(
            n, c, k, device, budget, args.min_repeats, args.memory, CLOCKS[args.clock]
        )
    ]
    df = pd.DataFrame(rows)
    print(
        f"torch {torch.__version__}, {args.threads} CPU threads, float32, "
        f"forward + backward, {args.clock} clock, medians over interleaved repeats"
        f"; {describe()}"
    )
    with pd.option_context("display.width", 140, "display.max_rows", 500):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.markdown == "-":
        print()
        print(to_markdown(df))
    elif args.markdown:
        with open(args.markdown, "w") as f:
            f.write(to_markdown(df) + "\n")
    return df


if __name__ == "__main__":
    main()

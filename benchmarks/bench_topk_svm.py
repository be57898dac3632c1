"""Forward + backward time and peak memory of the top-k SVM losses vs cross-entropy.

For batch 256, k = 5, float32 scores and C classes, each method runs one
forward and one backward pass; the methods are interleaved so that machine
noise hits them alike, and each time is the median over repeats, divided by
the median of ``F.cross_entropy`` measured in the same run.

Methods: ``cross_entropy`` (``torch.nn.functional.cross_entropy``, the
baseline), ``smooth_topk_svm`` (sktopk, tau = 1) and ``topk_svm`` (the hard
loss).

Peak extra memory: on CPU, the allocator events recorded by
``torch.profiler`` (``profile_memory=True``) during one forward + backward,
summed in time order; the peak of that running total is the largest amount of
memory held at once beyond what existed before the call (scores, labels). It
counts every tensor the call allocates: saved activations, temporaries and the
gradient (n x C, the same for all methods). On CUDA,
``torch.cuda.max_memory_allocated`` minus the memory allocated before the call.

For reference, the published implementation (Berrada et al.) measures about
200x cross-entropy at C = 1000 and about 13x its peak memory at C = 10000.

Usage::

    python benchmarks/bench_topk_svm.py                # C in 10..10000
    python benchmarks/bench_topk_svm.py --quick        # fewer repeats
    python benchmarks/bench_topk_svm.py --markdown     # also a Markdown table
    python benchmarks/bench_topk_svm.py --markdown t.md  # ... written to t.md
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from sktopk.losses._topk_svm import smooth_topk_svm, topk_svm

BATCH, K = 256, 5


def methods() -> dict:
    return {
        "cross_entropy": lambda s, y: F.cross_entropy(s, y),
        "smooth_topk_svm": lambda s, y: smooth_topk_svm(s, y, K, 1.0, 1.0),
        "topk_svm": lambda s, y: topk_svm(s, y, K, 1.0),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(fn, scores, labels) -> None:
    scores.grad = None
    fn(scores, labels).backward()


def _time(fn, scores, labels, device) -> float:
    _sync(device)
    start = time.perf_counter()
    _step(fn, scores, labels)
    _sync(device)
    return time.perf_counter() - start


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
    # One event per allocation (+bytes) or free (-bytes), with its time.
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


def bench_classes(n_classes: int, device: torch.device, repeats: int) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(BATCH, n_classes, generator=gen).to(device)
    scores.requires_grad_(True)
    labels = torch.randint(0, n_classes, (BATCH,), generator=gen).to(device)
    table = methods()
    for fn in table.values():  # warm-up
        for _ in range(3):
            _step(fn, scores, labels)
    times = {name: [] for name in table}
    for _ in range(repeats):
        for name, fn in table.items():
            times[name].append(_time(fn, scores, labels, device))
    memory = {
        name: peak_extra_bytes(fn, scores, labels, device) for name, fn in table.items()
    }
    base_t = statistics.median(times["cross_entropy"])
    base_m = memory["cross_entropy"]
    return [
        {
            "device": device.type,
            "C": n_classes,
            "method": name,
            "median_ms": 1e3 * statistics.median(ts),
            "x_cross_entropy": statistics.median(ts) / base_t,
            "peak_extra_MiB": memory[name] / 2**20,
            "memory_x_ce": memory[name] / base_m,
        }
        for name, ts in times.items()
    ]


def _repeats(n_classes: int, quick: bool) -> int:
    full = {10: 400, 100: 300, 1000: 200, 10000: 40}
    return max(5, full.get(n_classes, 50) // (8 if quick else 1))


def to_markdown(df: pd.DataFrame) -> str:
    columns = ["device", "C", "method", "median ms", "x cross-entropy"]
    columns += ["peak extra MiB", "memory x CE"]
    lines = ["| " + " | ".join(columns) + " |", "|---|---:|---|---:|---:|---:|---:|"]
    for r in df.itertuples(index=False):
        cells = [
            r.device,
            r.C,
            r.method,
            f"{r.median_ms:.3g}",
            f"{r.x_cross_entropy:.2f}",
        ]
        cells += [f"{r.peak_extra_MiB:.3g}", f"{r.memory_x_ce:.2f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--no-cuda", action="store_true", help="CPU only")
    parser.add_argument(
        "--classes", type=int, nargs="+", default=[10, 100, 1000, 10000]
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
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append(torch.device("cuda"))
    rows = [
        row
        for device in devices
        for c in args.classes
        for row in bench_classes(c, device, _repeats(c, args.quick))
    ]
    df = pd.DataFrame(rows)
    print(
        f"torch {torch.__version__}, {args.threads} CPU threads, float32, "
        f"batch {BATCH}, k = {K}, forward + backward"
    )
    with pd.option_context("display.width", 120, "display.max_rows", 200):
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

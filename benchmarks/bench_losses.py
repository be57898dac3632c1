"""Forward + backward time of the aggregate losses, relative to the average.

For each size n, every method runs on the same float32 losses (with a trainable
threshold where it has one); the median over repeats of one forward and one
backward pass is divided by the median of ``average`` measured in the same run,
with the methods interleaved so that machine noise hits them alike.

Methods: ``average``, ``maximum``, ``atk`` (sktopk: exact threshold by
selection, then the fused dual form), ``atk_topk`` (the reference:
``torch.topk(l, k).values.mean()``), ``matk``, ``stk`` (sktopk, fused) and
``stk_plain`` (the formula written as plain autograd operations), k = n / 10.

On CPU and n >= 2**20, MATk, STk and ATk use a kernel compiled once per process;
its compilation happens in an untimed warm-up call, whose time is reported.

Usage::

    python benchmarks/bench_losses.py            # n in 1e3, 1e5, 1e7
    python benchmarks/bench_losses.py --quick    # n in 1e3, 1e4, 1e5
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch

from sktopk.losses import atk, average, matk, maximum, srelu, stk


def _stk_plain(losses, lam, k):
    n = losses.numel()
    return srelu(losses - lam, 0.01).mean() + (k / n) * lam


def methods(k: int) -> dict:
    return {
        "average": lambda x, t: average(x),
        "maximum": lambda x, t: maximum(x),
        "atk": lambda x, t: atk(x, k),
        "atk_topk": lambda x, t: torch.topk(x, k).values.mean(),
        "matk": lambda x, t: matk(x, t, k),
        "stk": lambda x, t: stk(x, t, k),
        "stk_plain": lambda x, t: _stk_plain(x, t, k),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _one(fn, losses, lam, device) -> float:
    losses.grad, lam.grad = None, None
    _sync(device)
    start = time.perf_counter()
    fn(losses, lam).backward()
    _sync(device)
    return time.perf_counter() - start


def bench_size(n: int, device: torch.device, repeats: int) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    losses = torch.rand(n, generator=gen).mul_(3).to(device).requires_grad_()
    lam = torch.tensor(2.7, device=device, requires_grad=True)
    table = methods(max(1, n // 10))
    warmup = {name: _one(fn, losses, lam, device) for name, fn in table.items()}
    times = {name: [] for name in table}
    for _ in range(repeats):
        for name, fn in table.items():
            times[name].append(_one(fn, losses, lam, device))
    base = statistics.median(times["average"])
    return [
        {
            "device": device.type,
            "n": f"{n:.0e}",
            "method": name,
            "median_ms": 1e3 * statistics.median(ts),
            "x_average": statistics.median(ts) / base,
            "first_call_s": warmup[name],
        }
        for name, ts in times.items()
    ]


def _repeats(n: int, quick: bool) -> int:
    full = {10**3: 300, 10**4: 200, 10**5: 60, 10**7: 15}
    return max(3, full.get(n, 20) // (3 if quick else 1))


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n up to 1e5 only")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--no-cuda", action="store_true", help="CPU only")
    parser.add_argument("--sizes", type=float, nargs="+", help="override the sizes")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [10**3, 10**4, 10**5] if args.quick else [10**3, 10**5, 10**7]
    sizes = [int(n) for n in args.sizes] if args.sizes else sizes
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append(torch.device("cuda"))
    rows = [
        row
        for device in devices
        for n in sizes
        for row in bench_size(n, device, _repeats(n, args.quick))
    ]
    df = pd.DataFrame(rows)
    print(f"torch {torch.__version__}, {args.threads} CPU threads, float32, k = n/10")
    with pd.option_context("display.width", 120, "display.max_rows", 200):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return df


if __name__ == "__main__":
    main()

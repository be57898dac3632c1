"""Forward + backward time of the aggregate losses, relative to ``losses.mean()``.

For each size n, every method runs on the same float32 losses (with a trainable
threshold where it has one). One round interleaves the methods in a shuffled
order (so that noise on a shared machine, and the cost of running after
another method, hit them alike) and divides each method's median time by
that of ``mean`` (``losses.mean()``, the baseline) in the same round; the table
reports the median of these ratios over several rounds, and their spread.

Methods: ``mean`` and ``average`` (sktopk's, with its checks), ``maximum``,
``atk`` (sktopk: ``torch.topk`` up to 2**14 losses, beyond an exact threshold
by selection and the fused dual form), ``atk_topk`` (the reference:
``torch.topk(l, k).values.mean()``), ``matk``, ``stk`` (sktopk, fused) and
``stk_plain`` (the formula as plain autograd operations), and
``function_floor`` (an ``autograd.Function`` of the losses and lam that does
one sum and hands over ready gradients: what any fused aggregate with a
trainable threshold costs before its arithmetic); k = n / 10.

With ``--compiled``, a second table compares ``torch.compile(fullgraph=True)``
with eager, in rounds of their own: ``matk`` and ``stk`` alone, and a training
step (an MLP on 16 features, the logistic loss, then the mean or STk);
``x_eager`` is the compiled time over the eager one in the same round. The
compilation happens in an untimed first call, whose time is reported.

On CPU and n >= 2**20, MATk, STk and ATk use a kernel compiled once per process;
its compilation happens in the untimed first call too.

Usage::

    python benchmarks/bench_losses.py                  # n in 256, 4096, 1e7
    python benchmarks/bench_losses.py --quick          # n in 256, 4096, 1e5
    python benchmarks/bench_losses.py --compiled --rounds 9
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import pandas as pd
import torch

from sktopk.losses import atk, average, logistic, matk, maximum, srelu, stk
from sktopk.losses._native import describe


def _stk_plain(losses, lam, k):
    n = losses.numel()
    return srelu(losses - lam, 0.01).mean() + (k / n) * lam


class _Floor(torch.autograd.Function):
    """The least a fused aggregate can cost: an ``autograd.Function`` of the
    losses and lam whose forward is one sum and whose backward hands over
    gradients made in the forward (the per-call cost of a custom function
    and of two gradient accumulations, without the arithmetic)."""

    @staticmethod
    def forward(ctx, losses, lam):
        ctx.g, ctx.g_lam = torch.ones_like(losses), torch.ones_like(lam)
        return losses.sum()

    @staticmethod
    def backward(ctx, grad):
        return ctx.g, ctx.g_lam


def methods(k: int) -> dict:
    return {
        "mean": lambda x, t: x.mean(),
        "average": lambda x, t: average(x),
        "maximum": lambda x, t: maximum(x),
        "atk": lambda x, t: atk(x, k),
        "atk_topk": lambda x, t: torch.topk(x, k).values.mean(),
        "matk": lambda x, t: matk(x, t, k),
        "stk": lambda x, t: stk(x, t, k),
        "stk_plain": lambda x, t: _stk_plain(x, t, k),
        "function_floor": _Floor.apply,
    }


def compiled_methods(k: int, n: int) -> dict:
    """Eager and ``torch.compile(fullgraph=True)``: the aggregates alone, and a
    training step (an MLP, the logistic loss, STk or the mean)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 16, generator=gen)
    y = (torch.randint(0, 2, (n,), generator=gen) * 2 - 1).float()
    mlp = torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)
    )

    def step_mean(losses, lam):
        return logistic(mlp(x).squeeze(1), y).mean() + 0 * losses[0]

    def step_stk(losses, lam):
        return stk(logistic(mlp(x).squeeze(1), y), lam, k) + 0 * losses[0]

    table = {
        "mean": lambda x, t: x.mean(),
        "matk": lambda x, t: matk(x, t, k),
        "stk": lambda x, t: stk(x, t, k),
        "step_mean": step_mean,
        "step_stk": step_stk,
    }
    for name in ("matk", "stk", "step_mean", "step_stk"):
        table[f"{name}_compiled"] = torch.compile(table[name], fullgraph=True)
    return table


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


def bench_size(
    n: int, device: torch.device, repeats: int, rounds: int, compiled: bool
) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    losses = torch.rand(n, generator=gen).mul_(3).to(device).requires_grad_()
    lam = torch.tensor(2.7, device=device, requires_grad=True)
    k = max(1, n // 10)
    table = compiled_methods(k, n) if compiled else methods(k)
    first = {name: _one(fn, losses, lam, device) for name, fn in table.items()}
    ratios = {name: [] for name in table}
    to_eager = {name: [] for name in table}
    times = {name: [] for name in table}
    order = list(table)
    shuffle = random.Random(0).shuffle
    for _ in range(rounds):
        block = {name: [] for name in table}
        for _ in range(repeats):
            shuffle(order)  # no method always runs first, or after the same one
            for name in order:
                block[name].append(_one(table[name], losses, lam, device))
        medians = {name: statistics.median(ts) for name, ts in block.items()}
        for name, m in medians.items():
            times[name].append(m)
            ratios[name].append(m / medians["mean"])
            eager = name.removesuffix("_compiled")
            to_eager[name].append(m / medians[eager])
    return [
        {
            "device": device.type,
            "n": n,
            "method": name,
            "median_ms": 1e3 * statistics.median(times[name]),
            "x_mean": statistics.median(ratios[name]),
            "x_mean_min": min(ratios[name]),
            "x_mean_max": max(ratios[name]),
            **({"x_eager": statistics.median(to_eager[name])} if compiled else {}),
            "first_call_s": first[name],
        }
        for name in table
    ]


def _repeats(n: int, quick: bool) -> int:
    full = {256: 400, 4096: 300, 10**5: 40, 10**7: 5}
    return max(3, full.get(n, 20) // (3 if quick else 1))


def _table(args, sizes, devices, compiled: bool) -> pd.DataFrame:
    rows = [
        row
        for device in devices
        for n in sizes
        for row in bench_size(n, device, _repeats(n, args.quick), args.rounds, compiled)
    ]
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> list[pd.DataFrame]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n up to 1e5 only")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--no-cuda", action="store_true", help="CPU only")
    parser.add_argument("--sizes", type=float, nargs="+", help="override the sizes")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (medians)")
    parser.add_argument(
        "--compiled", action="store_true", help="also torch.compile against eager"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [256, 4096, 10**5] if args.quick else [256, 4096, 10**7]
    sizes = [int(n) for n in args.sizes] if args.sizes else sizes
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append(torch.device("cuda"))
    print(
        f"torch {torch.__version__}, {args.threads} CPU threads, float32, k = n/10, "
        f"{args.rounds} rounds; x_mean: median over rounds of the time relative to "
        "losses.mean() in the same round (min and max beside it)"
        f"; {describe()}"
    )
    tables = [_table(args, sizes, devices, compiled=False)]
    if args.compiled:
        tables.append(_table(args, sizes, devices, compiled=True))
    with pd.option_context("display.width", 140, "display.max_rows", 200):
        for i, df in enumerate(tables):
            if i:
                print("\ntorch.compile(fullgraph=True) against eager (x_eager):")
            print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return tables


if __name__ == "__main__":
    main()

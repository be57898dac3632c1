"""One-command GPU check: the CUDA tests, then GPU timings against CPU and torch.

Sections, each guarded (a failure or a time-out becomes a row of the table and
the next section runs) and each with a time cap inside a total budget:

1. ``tests``: the CUDA tests, ``pytest -m "cuda or not slow" -k cuda tests``
   (tests parametrised over the ``device`` fixture, whose ids contain
   ``cuda``, tests named for CUDA and tests marked ``cuda``), in a subprocess.
2. ``stk``: :func:`sktopk.losses.stk` at n = 1e8 (k = n / 10), forward +
   backward, against ``losses.mean()`` (and ``torch.topk`` for the exact ATk)
   on the GPU, and the same call on the CPU on the same data (time and the
   largest difference of value and gradient).
3. ``svm``: :func:`sktopk.losses.smooth_topk_svm` (k = 5) at C = 1e4 and 1e5
   classes, batch 1024, forward + backward, against ``F.cross_entropy``, on the
   GPU and on the CPU.
4. ``fit``: ``STkClassifier(model="mlp")`` on 1,000,000 x 100 on the GPU
   (batch 1024 for 3 epochs, then batch 16 for 1), time per epoch (fit time,
   set-up included, over epochs run), against the CPU on a 100,000-row
   subsample, its time scaled to the full size.
5. ``search``: ``STkSearchCV`` members (configurations x folds, 30 epochs
   each) per second on phoneme: a medium grid on the GPU and on the CPU (and
   the largest difference of their mean test scores), the paper's grid
   (1200 configurations) on the GPU.
6. ``estimator tests``: with the time left, the estimator tests, whose
   estimators use ``device="auto"`` and so run on CUDA.

Each timing is the median over repeats of one call, after a warm-up call
(reported when it is slow: compilation), the methods of a section
interleaved; each ratio is against a baseline of the same run and device.
Peak GPU memory is ``torch.cuda.max_memory_allocated`` over one call after a
reset, with the part beyond the memory held before the call in brackets.

Outputs in OUTDIR: ``gpu_check.md`` (the environment and the table, rewritten
after every section, so a run cut short still leaves one; also printed at the
end), ``gpu_check.json`` (the rows), ``cuda_tests.log`` and
``estimator_tests.log`` (pytest's output), ``errors.log`` (tracebacks). The
exit status is 0 when every section passed, 1 otherwise, 2 without CUDA.

Usage (needs only torch, numpy, scipy, pandas, scikit-learn, pytest,
hypothesis, tqdm; nothing is installed or downloaded)::

    PYTHONPATH=. python benchmarks/gpu_check.py OUTDIR            # about 7 min
    PYTHONPATH=. python benchmarks/gpu_check.py OUTDIR --dry-run  # CPU, tiny sizes
    PYTHONPATH=. python benchmarks/gpu_check.py OUTDIR --skip tests --budget 300

``--dry-run`` runs every code path but the CUDA-only ones (memory, device
properties) on the CPU with tiny sizes, the CPU standing in for the GPU, to
check the script where there is no GPU. The sktopk names used are the public
ones imported below each ``# API`` comment; if one is renamed, change it
there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

STARTED = time.perf_counter()  # before importing torch: the budget counts it

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20


@dataclasses.dataclass(frozen=True)
class Sizes:
    stk_n: int
    svm_classes: tuple[int, ...]
    svm_batch: int
    repeats: int
    cpu_repeats: int
    fit_shape: tuple[int, int]
    fit_cpu_rows: int
    fit_runs: tuple[tuple[int, int], ...]  # (batch_size, max_epochs)
    search_rows: int | None  # phoneme rows used (None: all)
    search_folds: int
    search_epochs: int
    search_grids: dict  # name -> (grid, devices)
    caps: dict  # section -> seconds
    budget: float


_PAPER_GRID = {
    "k": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    "C": [1.0, 10.0, 100.0, 1e3, 1e4, 1e5],
    "learning_rate": [0.1, 0.05, 0.01, 0.005, 0.001],
    "delta": [0.1, 0.01, 0.001, 1e-4],
}
_MEDIUM_GRID = {
    "k": [0.1, 0.3, 0.5, 0.7, 0.9, 1.0],
    "C": [10.0, 1000.0],
    "learning_rate": [0.1, 0.05, 0.01],
    "delta": [0.1, 0.01],
}

FULL = Sizes(
    stk_n=10**8,
    svm_classes=(10_000, 100_000),
    svm_batch=1024,
    repeats=10,
    cpu_repeats=3,
    fit_shape=(1_000_000, 100),
    fit_cpu_rows=100_000,
    fit_runs=((1024, 3), (16, 1)),
    search_rows=None,
    search_folds=3,
    search_epochs=30,
    search_grids={
        "medium": (_MEDIUM_GRID, ("gpu", "cpu")),
        "paper": (_PAPER_GRID, ("gpu",)),
    },
    caps={
        "tests": 100,
        "stk": 80,
        "svm": 45,
        "fit": 100,
        "search": 80,
        "estimator tests": 120,
    },  # fmt: skip
    budget=400.0,
)
DRY = Sizes(
    stk_n=100_000,
    svm_classes=(100, 1000),
    svm_batch=64,
    repeats=3,
    cpu_repeats=2,
    fit_shape=(4000, 10),
    fit_cpu_rows=1000,
    fit_runs=((256, 2), (16, 1)),
    search_rows=600,
    search_folds=2,
    search_epochs=3,
    search_grids={
        "small": ({"k": [0.5, 1.0], "C": [10.0, 1000.0]}, ("gpu", "cpu")),
    },
    caps={
        "tests": 120,
        "stk": 30,
        "svm": 30,
        "fit": 30,
        "search": 30,
        "estimator tests": 120,
    },  # fmt: skip
    budget=300.0,
)


_DRY_NOTE = (
    "dry run: tiny sizes, and the device under test is the CPU, so the numbers "
    "only show that the code paths run"
)


class SectionTimeout(BaseException):
    """Raised by the alarm when a section runs past its cap (a BaseException,
    so that no ``except Exception`` on the way swallows it; the alarm also
    fires again every few seconds in case one does)."""


@dataclasses.dataclass
class Context:
    gpu: torch.device  # the device under test (the CPU in a dry run)
    sizes: Sizes
    outdir: Path
    dry_run: bool
    rows: list = dataclasses.field(default_factory=list)
    section: str = ""
    deadline: float = float("inf")  # time.perf_counter() at the section's cap
    failures: int = 0

    def add(self, case, device, result, *, baseline="", speedup="", memory="", note=""):
        self.rows.append(
            {
                "section": self.section,
                "case": case,
                "device": str(device),
                "result": result,
                "vs baseline": baseline,
                "GPU speed-up over CPU": speedup,
                "peak GPU memory": memory,
                "note": note,
            }
        )


# -- measuring ---------------------------------------------------------------- #
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_all(steps: dict, device: torch.device, repeats: int) -> tuple[dict, dict]:
    """Median seconds of each ``step()`` over ``repeats`` calls, the steps
    interleaved so that machine noise hits them alike; and the time of each
    first (warm-up) call."""
    times, first = {name: [] for name in steps}, {}
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        _sync(device)
        first[name] = time.perf_counter() - start
    for _ in range(repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, first


def _peak(fn: Callable[[], object], device: torch.device) -> str:
    """Run ``fn()`` once; its peak allocated CUDA memory (and the part beyond
    what was allocated before), or '' on the CPU."""
    if device.type != "cuda":
        fn()
        return ""
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    _sync(device)
    peak = torch.cuda.max_memory_allocated(device)
    return f"{peak / MIB:.0f} MiB (+{(peak - before) / MIB:.0f})"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _fwd_bwd(loss_fn, *inputs):
    def step():
        for t in inputs:
            t.grad = None
        loss_fn().backward()

    return step


# -- sections ----------------------------------------------------------------- #
def section_tests(ctx: Context) -> None:
    selection = ["-m", "cuda or not slow", "-k", "cuda", "tests"]
    _run_pytest(ctx, "CUDA tests", selection, "cuda_tests.log")


def section_estimator_tests(ctx: Context) -> None:
    if ctx.dry_run:
        ctx.add("estimator tests on CUDA", "-", "skipped", note="not in --dry-run")
        return
    selection = ["-m", "not slow", "tests/estimators", "tests/test_engine_grid.py"]
    _run_pytest(
        ctx,
        "estimator tests (device auto)",
        selection,
        "estimator_tests.log",
        best_effort=True,
    )


def _run_pytest(
    ctx: Context, case: str, selection: list, log: str, best_effort: bool = False
) -> None:
    paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection]
    timeout = max(1.0, ctx.deadline - time.perf_counter() - 3)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:  # killed; keep what it printed
        output = "".join(
            b.decode(errors="replace") if isinstance(b, bytes) else b or ""
            for b in (exc.stdout, exc.stderr)
        )
        code = None
    wall = time.perf_counter() - start
    (ctx.outdir / log).write_text(" ".join(cmd[1:]) + "\n\n" + output)
    last = output.strip().splitlines()[-1] if output.strip() else ""
    words = "passed|failed|skipped|deselected|errors?|xfailed|xpassed"
    counts = re.findall(rf"(\d+) ({words})", last)
    summary = ", ".join(f"{n} {w}" for n, w in counts) or "no summary"
    # pytest exit codes: 0 all passed, 5 nothing selected.
    status = {0: "ok", 5: "none selected", None: "TIMED OUT"}.get(code, "FAILED")
    if status == "TIMED OUT" and best_effort:  # the time left, no more
        status = "partial (time left ran out)"
    ctx.failures += status in ("FAILED", "TIMED OUT")
    note = f"{status} (exit {code}) in {wall:.0f} s; log: {log}"
    ctx.add(case, ctx.gpu, summary, note=note)


def _measure(ctx, steps, device, repeats, unit, note) -> dict:
    """Time ``steps`` (the first is the baseline), add a row for each with its
    ratio to the baseline and its peak memory; return the median times."""
    times, first = _time_all(steps, device, repeats)
    base = next(iter(times.values()))
    for name, step in steps.items():
        extra = f"{note}, median of {repeats}"
        if first[name] > 2 * times[name] + 1:
            extra += f"; first call {first[name]:.1f} s (compilation, set-up)"
        memory = _peak(step, device)
        ratio = f"{times[name] / base:.2f}x {unit}"
        ctx.add(
            name, device, _ms(times[name]), baseline=ratio, memory=memory, note=extra
        )
    return times


def _agreement(ctx, case, times, values, grads, note) -> None:
    """Row comparing the device under test with the CPU on the same inputs."""
    rel = abs(values["gpu"] - values["cpu"]) / abs(values["cpu"])
    grad = float((grads["gpu"] - grads["cpu"]).abs().max())
    speedup = f"{times['cpu'] / times['gpu']:.3g}x"
    note = f"{note}value rel. diff {rel:.1e}, gradient max abs diff {grad:.1e}"
    ctx.add(case, ctx.gpu, "", speedup=speedup, note=note)


def section_stk(ctx: Context) -> None:
    # API: the STk aggregate over samples.
    from sktopk.losses import stk

    n, s = ctx.sizes.stk_n, ctx.sizes
    k = max(1, n // 10)
    base = torch.rand(n, generator=torch.Generator().manual_seed(0)).mul_(3)
    times, values, grads = {}, {}, {}
    for key, device, repeats in (
        ("gpu", ctx.gpu, s.repeats),
        ("cpu", torch.device("cpu"), s.cpu_repeats),
    ):
        x = base.to(device).requires_grad_()
        lam = torch.tensor(2.7, device=device, requires_grad=True)
        steps = {
            "mean (torch)": _fwd_bwd(lambda x=x: x.mean(), x, lam),
            "stk": _fwd_bwd(lambda x=x, t=lam: stk(x, t, k), x, lam),
        }
        if device.type == "cuda":  # the exact ATk, as torch users write it
            topk = _fwd_bwd(lambda x=x: torch.topk(x, k)[0].mean(), x, lam)
            steps["atk via torch.topk"] = topk
        note = f"n={n:.0e}, k=n/10, float32"
        times[key] = _measure(ctx, steps, device, repeats, "mean", note)["stk"]
        x.grad = None
        value = stk(x, lam, k)
        value.backward()
        values[key], grads[key] = value.item(), x.grad.cpu()
        del x, lam, steps
    _agreement(ctx, "stk GPU vs CPU", times, values, grads, "")


def section_svm(ctx: Context) -> None:
    # API: the smooth top-k SVM loss over classes.
    from sktopk.losses import smooth_topk_svm

    s = ctx.sizes
    gen = torch.Generator().manual_seed(0)
    svm_name = "smooth_topk_svm k=5"
    for n_classes in s.svm_classes:
        scores0 = torch.randn(s.svm_batch, n_classes, generator=gen)
        labels0 = torch.randint(0, n_classes, (s.svm_batch,), generator=gen)
        times, values, grads = {}, {}, {}
        for key, device, repeats in (
            ("gpu", ctx.gpu, s.repeats),
            ("cpu", torch.device("cpu"), s.cpu_repeats),
        ):
            x = scores0.to(device).requires_grad_()
            y = labels0.to(device)
            steps = {
                "cross_entropy (torch)": _fwd_bwd(
                    lambda x=x, y=y: F.cross_entropy(x, y), x
                ),
                svm_name: _fwd_bwd(lambda x=x, y=y: smooth_topk_svm(x, y, k=5), x),
            }
            note = f"C={n_classes:.0e}, batch {s.svm_batch}, float32"
            times[key] = _measure(ctx, steps, device, repeats, "CE", note)[svm_name]
            x.grad = None
            value = smooth_topk_svm(x, y, k=5)
            value.backward()
            values[key], grads[key] = value.item(), x.grad.cpu()
            del x, y, steps
        note = f"C={n_classes:.0e}: "
        _agreement(ctx, f"{svm_name} GPU vs CPU", times, values, grads, note)


def section_fit(ctx: Context) -> None:
    # API: the estimator.
    from sktopk import STkClassifier

    s, cpu = ctx.sizes, torch.device("cpu")
    n, d = s.fit_shape
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal(d).astype(np.float32)
    y = (X @ w + rng.standard_normal(n, dtype=np.float32) * 2 > 0).astype(np.int64)
    for batch, epochs in s.fit_runs:
        per_epoch = {}
        for key, device, rows in (("gpu", ctx.gpu, n), ("cpu", cpu, s.fit_cpu_rows)):
            clf = STkClassifier(
                model="mlp",
                batch_size=batch,
                max_epochs=epochs,
                device=str(device),
                random_state=0,
            )
            holder = {}

            def fit(clf=clf, rows=rows, holder=holder):
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # ConvergenceWarning
                    clf.fit(X[:rows], y[:rows])
                holder["wall"] = time.perf_counter() - start

            memory = _peak(fit, device)
            epoch = holder["wall"] / clf.n_iter_
            per_epoch[key] = epoch * n / rows
            acc = clf.score(X[:10_000], y[:10_000])
            note = (
                f"{rows} x {d}, batch {batch}, {clf.n_iter_} epoch(s), "
                f"fit {holder['wall']:.3g} s (set-up included), train acc {acc:.3f}"
            )
            result = f"{epoch:.3g} s/epoch"
            if rows != n:
                result += f" ({per_epoch[key]:.3g} s per {n} rows)"
            case = f"STkClassifier mlp, batch {batch}"
            ctx.add(case, device, result, memory=memory, note=note)
        speedup = f"{per_epoch['cpu'] / per_epoch['gpu']:.3g}x"
        note = "per epoch of the full size (CPU time scaled from its subsample)"
        ctx.add(
            f"fit GPU vs CPU, batch {batch}", ctx.gpu, "", speedup=speedup, note=note
        )


def section_search(ctx: Context) -> None:
    # API: the estimator, the batched search and the bundled data.
    from sklearn.model_selection import ParameterGrid
    from sklearn.preprocessing import StandardScaler

    from sktopk import STkClassifier, STkSearchCV
    from sktopk.datasets import load_dataset

    s = ctx.sizes
    X, y = load_dataset("phoneme", return_X_y=True)
    X, y = X[: s.search_rows], y[: s.search_rows]
    X = StandardScaler().fit_transform(X)
    devices = {"gpu": ctx.gpu, "cpu": torch.device("cpu")}
    for grid_name, (grid, where) in s.search_grids.items():
        members = len(ParameterGrid(grid)) * s.search_folds
        scores, rates = {}, {}
        for key in where:
            device = devices[key]
            est = STkClassifier(
                model="mlp",
                max_epochs=s.search_epochs,
                device=str(device),
                random_state=0,
            )
            search = STkSearchCV(est, grid, cv=s.search_folds, refit=False)
            holder = {}

            def run(search=search, holder=holder):
                start = time.perf_counter()
                search.fit(X, y)
                holder["wall"] = time.perf_counter() - start

            memory = _peak(run, device)
            wall = holder["wall"]
            rates[key] = members / wall
            scores[key] = np.asarray(search.cv_results_["mean_test_score"])
            note = (
                f"{members} members ({grid_name} grid x {s.search_folds} folds), "
                f"{s.search_epochs} epochs, {len(X)} rows, {wall:.3g} s, batches "
                f"of {getattr(search, 'members_per_batch_', '?')}"
            )
            result = f"{rates[key]:.1f} members/s"
            ctx.add(
                f"STkSearchCV {grid_name}", device, result, memory=memory, note=note
            )
        if len(where) == 2:
            diff = float(np.abs(scores["gpu"] - scores["cpu"]).max())
            speedup = f"{rates['gpu'] / rates['cpu']:.3g}x"
            note = f"mean test scores max diff {diff:.3g}"
            ctx.add(
                f"search {grid_name} GPU vs CPU",
                ctx.gpu,
                "",
                speedup=speedup,
                note=note,
            )


SECTIONS: list[tuple[str, Callable[[Context], None]]] = [
    ("tests", section_tests),
    ("stk", section_stk),
    ("svm", section_svm),
    ("fit", section_fit),
    ("search", section_search),
    ("estimator tests", section_estimator_tests),
]


# -- driver ------------------------------------------------------------------- #
def _on_alarm(signum, frame):
    raise SectionTimeout


def _environment(ctx: Context) -> list[str]:
    """The header lines; a failure becomes a line and a failed setup row, so
    that the table is still written."""
    try:
        return _describe(ctx)
    except Exception as exc:
        ctx.failures += 1
        ctx.section = "setup"
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        ctx.add("environment", "-", "FAILED", note=message)
        return [f"- environment: FAILED ({message})"]


def _describe(ctx: Context) -> list[str]:
    import sktopk

    lines = [
        f"- mode: {_DRY_NOTE if ctx.dry_run else 'full'}",
        f"- sktopk {sktopk.__version__}, torch {torch.__version__} "
        f"(CUDA {torch.version.cuda}), numpy {np.__version__}, "
        f"Python {platform.python_version()}",
        f"- CPU: {os.cpu_count()} logical cores, torch threads "
        f"{torch.get_num_threads()}",
    ]
    if ctx.gpu.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(ctx.gpu)
        lines.append(
            f"- GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
            f"compute capability {props.major}.{props.minor}"
        )
    else:
        lines.append(f"- GPU: none (CUDA available: {torch.cuda.is_available()})")
    return lines


def _write(ctx: Context, header: list[str], elapsed: float) -> str:
    columns = list(ctx.rows[0]) if ctx.rows else ["section", "note"]
    table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in ctx.rows:
        cells = (str(row.get(c, "")).replace("|", "/") for c in columns)
        table.append("| " + " | ".join(cells) + " |")
    text = "\n".join(
        [
            "# GPU check",
            "",
            "Made by `PYTHONPATH=. python benchmarks/gpu_check.py "
            f"OUTDIR{' --dry-run' if ctx.dry_run else ''}` in {elapsed:.0f} s.",
            "",
            *header,
            "",
            *table,
            "",
        ]
    )
    for name, content in (
        ("gpu_check.md", text),
        ("gpu_check.json", json.dumps(ctx.rows, indent=1)),
    ):
        tmp = ctx.outdir / f".{name}.tmp"
        tmp.write_text(content)
        os.replace(tmp, ctx.outdir / name)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU only, tiny sizes: checks the code paths",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="total seconds from the start (default 400; 300 in --dry-run)",
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=[n for n, _ in SECTIONS],
        help="sections to leave out",
    )
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    sizes = DRY if args.dry_run else FULL
    budget = args.budget if args.budget is not None else sizes.budget
    gpu = torch.device("cpu" if args.dry_run else "cuda")
    ctx = Context(gpu, sizes, args.outdir, args.dry_run)
    if not args.dry_run and not torch.cuda.is_available():
        header = _environment(ctx)
        ctx.section = "setup"
        ctx.add(
            "CUDA",
            "-",
            "FAILED",
            note="torch.cuda.is_available() is False; "
            "use --dry-run on a machine without a GPU",
        )
        print(_write(ctx, header, time.perf_counter() - STARTED))
        return 2
    header = _environment(ctx)
    _watchdog(ctx, header, budget)
    use_alarm = hasattr(signal, "setitimer")
    if use_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)
    for name, section in SECTIONS:
        ctx.section = name
        left = budget - (time.perf_counter() - STARTED)
        cap = min(sizes.caps.get(name, left), left - 5)
        if name in args.skip or cap < _MIN_CAP.get(name, 10):
            why = "--skip" if name in args.skip else f"budget ({left:.0f} s left)"
            ctx.add("-", "-", "skipped", note=why)
            _write(ctx, header, time.perf_counter() - STARTED)
            continue
        _run_section(ctx, name, section, cap, use_alarm)
        _write(ctx, header, time.perf_counter() - STARTED)
    print(_write(ctx, header, time.perf_counter() - STARTED))
    return 1 if ctx.failures else 0


#: Sections that are not worth starting with less time (seconds).
_MIN_CAP = {"estimator tests": 60}
#: Seconds between repeated alarms, should one be swallowed on the way.
_ALARM_REPEAT = 5.0
#: Seconds past the budget after which the watchdog ends the process.
_GRACE = 30.0


def _run_section(ctx: Context, name: str, section, cap: float, use_alarm: bool):
    """Run one section under its cap: a time-out or an error becomes a row."""
    start = time.perf_counter()
    ctx.deadline = start + cap
    print(f"[gpu_check] {name} (cap {cap:.0f} s) ...", flush=True)
    try:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, cap, _ALARM_REPEAT)
        section(ctx)
        _disarm(use_alarm)
    except SectionTimeout:
        _disarm(use_alarm)
        ctx.failures += 1
        ctx.add("-", "-", "TIMED OUT", note=f"cap {cap:.0f} s reached")
    except Exception as exc:  # report and go on with the next section
        _disarm(use_alarm)
        ctx.failures += 1
        with open(ctx.outdir / "errors.log", "a") as log:
            log.write(f"## {name}\n{traceback.format_exc()}\n")
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        ctx.add("-", "-", "FAILED", note=f"{message} (errors.log)")
    if ctx.gpu.type == "cuda":
        torch.cuda.empty_cache()
    print(f"[gpu_check] {name} done in {time.perf_counter() - start:.0f} s", flush=True)


def _disarm(use_alarm: bool) -> None:
    if use_alarm:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _watchdog(ctx: Context, header: list[str], budget: float) -> None:
    """End the process, the table written, if it runs past the budget by
    :data:`_GRACE` seconds whatever a section does (a hung kernel, an
    alarm that cannot interrupt native code)."""

    def stop():
        ctx.add("-", "-", "STOPPED", note=f"watchdog: past {budget + _GRACE:.0f} s")
        print(_write(ctx, header, time.perf_counter() - STARTED), flush=True)
        os._exit(1)

    remaining = budget + _GRACE - (time.perf_counter() - STARTED)
    timer = threading.Timer(max(remaining, 1.0), stop)
    timer.daemon = True
    timer.start()


if __name__ == "__main__":
    sys.exit(main())

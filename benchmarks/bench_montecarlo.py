"""Throughput of the m = 1 Monte Carlo study: ours vs vectorized NumPy vs a per-trial Python loop.

Everything in one run, on this machine, with the study's default settings (n = 2, η = 0.05,
α = 0.99, PyTorch-style init, budget 60,000 steps, tol 1e-8, float64):

* ours: :func:`dualjax.linear.montecarlo.study` on one device, 10,000 trials each for SG and
  EMA, with the compiled CPU kernel (``engine="kernel"``, the default on CPUs) and with the
  XLA closed form (``engine="fast"``, the default on a GPU, where it is the only row), timed
  after a warm-up that compiles (compile time reported separately); ours and NumPy are the best
  of ``--repeats`` timings; every implementation in the comparison uses one core (an extra row
  gives the kernel on all cores, ``threads``);
* NumPy: the same algorithm vectorized over trials (closed-form step, the same stopping rule,
  active trials compacted every 256 steps);
* Python loop: one trial at a time, NumPy on 2-vectors, on a subset, extrapolated by steps;
* the arithmetic limit: flops per trial-step (XLA's cost analysis of the compiled step,
  cross-checked by hand) × total trial-steps / peak flops (measured single-core float64 DGEMM);
* 1,000,000 SG trials in a subprocess per engine (chunked pool; its peak RSS, and the RSS of a
  10,000 trial subprocess for comparison);
* the whole process (:func:`whole_process`): ``dualjax montecarlo --trials 10000 --rules sg,ema
  --n 4`` run as a command, with and without figures, on a cold compilation cache (a fresh
  folder), a warm one (the same folder again) and none (``--no-cache``): wall seconds, CPU
  seconds and peak RSS of the child, best of ``--repeats``.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_montecarlo.py [--million] [--loop-trials 20]
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_montecarlo.py --whole-process-only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ALPHA = 0.99  # the EMA momentum of the study's EMA rule


def numpy_study(rho, tau, lam, a0, B0, rule, eta, alpha, max_steps, tol, max_norm=1e6, compact_every=256):
    """Vectorized NumPy SG / EMA over trials; returns (steps, final a, bad, converged)."""
    T, n = a0.shape
    a, B, c = a0.copy(), B0.copy(), a0.copy()
    steps = np.zeros(T, np.int64)
    inc2 = np.full(T, np.inf)
    bad = np.zeros(T, bool)
    active = np.arange(T)
    t = 0
    while active.size and t < max_steps:
        # work on the active subset only (compaction), K steps at a time
        idx = active
        aa, BB, cc = a[idx], B[idx], c[idx]
        r_, t_, l_ = rho[idx, None], tau[idx, None], lam[idx, None]
        st, ic, bd = steps[idx], inc2[idx], bad[idx]
        for _ in range(min(compact_every, max_steps - t)):
            act = (ic >= tol * tol) & ~bd
            teacher = cc if rule == "ema" else aa
            u = np.einsum("tij,tj->ti", BB, aa)
            r = r_ * u - t_ * teacher
            da = eta * (np.einsum("tij,ti->tj", BB, r) + l_ * aa)
            dB = eta * (r[:, :, None] * aa[:, None, :] + l_[:, :, None] * BB)
            a2, B2 = aa - da, BB - dB
            if rule == "ema":
                c2 = alpha * cc + (1 - alpha) * a2
                new = (da * da).sum(1) + (dB * dB).sum((1, 2)) + ((c2 - cc) ** 2).sum(1)
            else:
                c2 = a2
                new = 2 * (da * da).sum(1) + (dB * dB).sum((1, 2))
            sq = (a2 * a2).sum(1) + (B2 * B2).sum((1, 2))
            aa = np.where(act[:, None], a2, aa)
            BB = np.where(act[:, None, None], B2, BB)
            cc = np.where(act[:, None], c2, cc)
            ic = np.where(act, new, ic)
            bd = bd | (act & (~np.isfinite(sq) | (sq > max_norm**2)))
            st = st + act
            t += 1
        a[idx], B[idx], c[idx], steps[idx], inc2[idx], bad[idx] = aa, BB, cc, st, ic, bd
        active = idx[(ic >= tol * tol) & ~bd & (st < max_steps)]
    return steps, a, bad, (inc2 < tol * tol) & ~bad


def python_loop_trial(rho, tau, lam, a0, B0, rule, eta, alpha, max_steps, tol, max_norm=1e6):
    """One trial, one step at a time (the straightforward implementation)."""
    a, B, c = a0.copy(), B0.copy(), a0.copy()
    for t in range(max_steps):
        teacher = c if rule == "ema" else a
        r = rho * (B @ a) - tau * teacher
        da = eta * (B.T @ r + lam * a)
        dB = eta * (np.outer(r, a) + lam * B)
        a2, B2 = a - da, B - dB
        if rule == "ema":
            c2 = alpha * c + (1 - alpha) * a2
            inc2 = da @ da + (dB * dB).sum() + (c2 - c) @ (c2 - c)
        else:
            c2 = a2
            inc2 = 2 * da @ da + (dB * dB).sum()
        a, B, c = a2, B2, c2
        if not np.isfinite(inc2) or a @ a + (B * B).sum() > max_norm**2:
            return t + 1
        if inc2 < tol * tol:
            return t + 1
    return max_steps


def peak_dgemm_gflops(size=2000, reps=3):
    x = np.random.default_rng(0).standard_normal((size, size))
    x @ x
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter()
        x @ x
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def _child(trials, rule, max_steps, engine):
    """Run a study in this (child) process and print its timing as JSON."""
    from dualjax import rules
    from dualjax.linear import montecarlo as mc

    cfg = mc.Config(max_steps=max_steps)
    t = time.perf_counter()
    res = mc.study(trials, [rules.resolve(rule, momentum=ALPHA)], cfg, seed=0, chunk=4096, engine=engine,
                   threads=1)[rule]
    dt = time.perf_counter() - t
    print(json.dumps({"trials": trials, "seconds": dt, "steps": int(res["steps"].sum()),
                      "outer": float((res["outcome"] == 0).mean()),
                      "maxrss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ``getrusage``: Linux carries ru_maxrss over
    from the parent through fork and exec, so a child would report the benchmark's own peak."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_run(trials, rule="sg", max_steps=60_000, engine="auto"):
    out = subprocess.run([sys.executable, __file__, "--child", str(trials), rule, str(max_steps), engine],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# The command, then its peak RSS (VmHWM: of this address space, unlike ru_maxrss, which a child
# inherits from the parent through fork) as the last line on stderr.
COMMAND = ("import sys\nfrom dualjax.cli import main\nrc = main(sys.argv[1:])\n"
           "print('VmHWM', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0], "
           "file=sys.stderr)\nsys.exit(rc)")


def run_command(argv: list[str], env: dict[str, str]) -> dict:
    """Run ``dualjax ARGV`` as a child process; its wall seconds, CPU seconds (user + system,
    from ``wait4``: this child's own) and peak RSS (VmHWM)."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", COMMAND, *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"dualjax {' '.join(argv)} exited with {proc.returncode}: {err[-2000:]}")
    rss_kb = int(err.strip().splitlines()[-1].split()[1])
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_mb": rss_kb / 1024}


def whole_process(trials: int = 10_000, n: int = 4, repeats: int = 2) -> list[tuple]:
    """``dualjax montecarlo --trials T --rules sg,ema --n N`` as a whole process, with and without
    figures, on a cold cache (a fresh ``DUALJAX_CACHE_DIR``), a warm one (the folder a cold run
    filled) and none (``--no-cache``); each the best of ``repeats`` runs by wall time.
    Returns rows (figures, cache, wall s, CPU s, peak RSS MB)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="dualjax-bench-") as tmp:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
        env.pop("DUALJAX_NO_CACHE", None)
        count = iter(range(10**6))
        for figures in (False, True):
            base = ["montecarlo", "--trials", str(trials), "--rules", "sg,ema", "--n", str(n)]
            base += [] if figures else ["--no-figures"]

            def best(extra, cache_dir):
                runs = [run_command([*base, *extra, "--out", os.path.join(tmp, f"out{next(count)}")],
                                    {**env, "DUALJAX_CACHE_DIR": cache_dir()}) for _ in range(repeats)]
                return min(runs, key=lambda r: r["wall"])

            folders = []

            def fresh():
                folders.append(os.path.join(tmp, f"cache{next(count)}"))
                return folders[-1]

            for cache, extra, cache_dir in (("none (--no-cache)", ["--no-cache"], fresh),
                                            ("cold (empty folder)", [], fresh),
                                            ("warm (same folder again)", [], lambda: folders[-1])):
                r = best(extra, cache_dir)
                rows.append(("with figures" if figures else "--no-figures", cache, r["wall"], r["cpu"],
                             r["maxrss_mb"]))
                print(f"whole process, {rows[-1][0]}, cache {cache}: {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, "
                      f"{r['maxrss_mb']:.0f} MB peak RSS", flush=True)
    return rows


def print_whole_process(rows, trials: int, n: int) -> None:
    print(f"\n| `dualjax montecarlo --trials {trials} --rules sg,ema --n {n}` | compilation cache | wall s | "
          "CPU s | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for figures, cache, wall, cpu, rss in rows:
        print(f"| {figures} | {cache} | {wall:.1f} | {cpu:.1f} | {rss:.0f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--loop-trials", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2, help="best of this many timings (shared machines)")
    p.add_argument("--million", action="store_true", help="also run 1,000,000 SG trials (minutes)")
    p.add_argument("--whole-process-only", action="store_true",
                   help="only the whole-process rows (the command, cold / warm / no cache, with and without figures)")
    p.add_argument("--whole-process-n", type=int, default=4, help="state size n of the whole-process rows")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(int(args.child[0]), args.child[1], int(args.child[2]), args.child[3])
        return 0
    if args.whole_process_only:
        print(f"machine: {os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f} (1 min)")
        print_whole_process(whole_process(args.trials, args.whole_process_n, args.repeats), args.trials,
                            args.whole_process_n)
        return 0

    import jax

    from dualjax import rules
    from dualjax.linear import montecarlo as mc
    from dualjax.linear.montecarlo import xlapool

    cfg = mc.Config()
    study_rules = {"sg": rules.sg(), "ema": rules.ema(ALPHA)}
    print(f"machine: {os.cpu_count()} CPUs visible, jax {jax.__version__} on {jax.devices()[0].platform} "
          f"x{len(jax.devices())}; settings {cfg}")
    rows = []
    with jax.enable_x64(True):
        # ---- ours: the compiled CPU kernel (the default on CPUs) and the XLA engine (any device)
        platform = jax.devices()[0].platform
        engines = ["kernel", "fast"] if platform == "cpu" and mc.kernel.AVAILABLE else ["fast"]
        where = "1 CPU core" if platform == "cpu" else jax.devices()[0].device_kind
        label = {"kernel": f"ours (compiled kernel, numba, {where})", "fast": f"ours (JAX/XLA fast engine, {where})"}
        t = time.perf_counter()
        for engine in engines:
            mc.study(256, list(study_rules.values()), cfg, seed=99, engine=engine, devices=1, threads=1)  # compile
        compile_s = time.perf_counter() - t
        cores = mc.kernel.default_threads()

        def timed(rule, engine, threads=1):
            mc.study(args.trials, [study_rules[rule]], cfg, seed=1, engine=engine, devices=1,
                     threads=threads)  # warm-up
            best = np.inf
            for _ in range(args.repeats):  # best of: the machine is shared
                t = time.perf_counter()
                res = mc.study(args.trials, [study_rules[rule]], cfg, seed=0, engine=engine, devices=1,
                               threads=threads)[rule]
                best = min(best, time.perf_counter() - t)
            return best, res

        ours, steps_total, ours_steps, by_engine, all_cores = {}, {}, {}, {}, {}
        for rule in ("sg", "ema"):
            for engine in engines:
                best, res = timed(rule, engine)
                by_engine[engine, rule] = best
                if engine == engines[0]:
                    ours[rule], steps_total[rule], ours_steps[rule] = best, int(res["steps"].sum()), res["steps"]
                else:
                    same = np.mean(res["steps"] == ours_steps[rule]) * 100
                    print(f"  {engine} vs {engines[0]} ({rule}): identical step counts for {same:.2f}% of trials")
                rows.append((label[engine], rule, args.trials, best, "measured"))
                print(f"ours {engine} {rule}: {best:.3f} s, {int(res['steps'].sum()):.3g} trial-steps "
                      f"({res['steps'].sum() / best:.3g}/s), mean steps {res['steps'].mean():.0f}", flush=True)
            if "kernel" in engines and cores > 1:  # not in the single-core comparison below
                all_cores[rule], _ = timed(rule, "kernel", cores)
                print(f"ours kernel {rule} on {cores} threads: {all_cores[rule]:.3f} s", flush=True)
            if rule == "sg":
                sample = jax.jit(jax.vmap(lambda i: mc.sample_trial(jax.random.PRNGKey(0), i, cfg)))(
                    jax.numpy.arange(args.trials))
                data = [np.asarray(x) for x in sample[1:]]

        # ---- flops per trial-step: XLA cost analysis of one compiled pool block
        ops = xlapool.xla_pool("fast", mc.closed_form(study_rules["sg"]), cfg, 256, jax.sharding.NamedSharding(
            mc.make_mesh(1), jax.sharding.PartitionSpec("trials")))
        idx = jax.numpy.arange(1024, dtype=jax.numpy.int32)
        pool = ops.fill(jax.random.PRNGKey(0), np.asarray(idx), np.ones(1024, bool))
        cost = ops.advance.lower(pool).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        # the cost analysis counts the loop body (ADVANCE_UNROLL steps) once: flops per slot per
        # step, *as executed* (XLA splits the step into several fusions that recompute shared terms)
        flops_xla = float(cost.get("flops", float("nan"))) / (1024 * xlapool.ADVANCE_UNROLL[False])
    n = cfg.n
    # essential flops (see docs/montecarlo.md): 3 mat-vecs, outer product, updates, E, norms
    flops_hand = {"sg": 17 * n * n + 20 * n + 12, "ema": 17 * n * n + 30 * n + 22}
    print(f"flops per trial-step: hand count SG {flops_hand['sg']}, EMA {flops_hand['ema']}; "
          f"XLA cost analysis of the compiled SG step {flops_xla:.0f} (with recomputation)")

    # ---- NumPy vectorized
    rho, tau, lam, a0, B0 = data
    numpy_t = {}
    for rule in ("sg", "ema"):
        numpy_t[rule] = np.inf
        for _ in range(args.repeats):
            t = time.perf_counter()
            steps, _, _, _ = numpy_study(rho, tau, lam, a0, B0, rule, cfg.eta, ALPHA, cfg.max_steps, cfg.tol)
            numpy_t[rule] = min(numpy_t[rule], time.perf_counter() - t)
        rows.append(("NumPy vectorized (same algorithm)", rule, args.trials, numpy_t[rule], "measured"))
        print(f"numpy {rule}: {numpy_t[rule]:.1f} s (steps agree with ours for "
              f"{np.mean(np.abs(steps - ours_steps[rule]) <= 2) * 100:.1f}% of trials)", flush=True)

    # ---- per-trial Python loop on a subset, extrapolated by trial-steps
    loop_t = {}
    for rule in ("sg", "ema"):
        t = time.perf_counter()
        done = 0
        for i in range(args.loop_trials):
            done += python_loop_trial(rho[i], tau[i], lam[i], a0[i], B0[i], rule, cfg.eta, ALPHA,
                                      cfg.max_steps, cfg.tol)
        per_step = (time.perf_counter() - t) / done
        loop_t[rule] = per_step * steps_total[rule]
        rows.append((f"Python loop ({args.loop_trials} trials, extrapolated)", rule, args.trials, loop_t[rule],
                     "extrapolated"))

    # ---- arithmetic limit
    peak = peak_dgemm_gflops()
    limit = {r: steps_total[r] * flops_hand[r] / (peak * 1e9) for r in ("sg", "ema")}
    print(f"peak: {peak:.1f} GFLOP/s float64 DGEMM, 1 core (OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})")

    print(f"\n| implementation | rule | trials | seconds | trials/s | {engines[0]} is × faster | note |")
    print("|---|---|---|---|---|---|---|")
    for name, rule, trials, sec, note in rows:
        print(f"| {name} | {rule} | {trials} | {sec:.3f} | {trials / sec:.4g} | {sec / ours[rule]:.1f} | {note} |")
    for rule in ("sg", "ema"):
        vs = ", ".join(f"{e} {by_engine[e, rule] / limit[rule]:.1f}×" for e in engines)
        print(f"| arithmetic limit ({flops_hand[rule]} flop/step × {steps_total[rule]:.3g} steps / {peak:.0f} GFLOP/s)"
              f" | {rule} | {args.trials} | {limit[rule]:.3f} | {args.trials / limit[rule]:.4g} | "
              f"time / limit: {vs} | estimate |")
    for rule, sec in all_cores.items():
        print(f"| ours: compiled kernel, all {cores} cores (threads={cores}) | {rule} | {args.trials} | {sec:.3f} | "
              f"{args.trials / sec:.4g} | {sec / ours[rule]:.2f} | measured, not in the single-core comparison |")
    print(f"\ncompile (first calls, 256 trials, both rules, {' and '.join(engines)}): {compile_s:.1f} s")

    print_whole_process(whole_process(args.trials, args.whole_process_n, args.repeats), args.trials,
                        args.whole_process_n)

    if args.million:
        print("\n| engine (1 thread) | SG trials (subprocess) | seconds (incl. compile) | trials/s | peak RSS (MB) | outer fraction |")
        print("|---|---|---|---|---|---|")
        for engine in engines:
            for trials in (10_000, 1_000_000):
                r = child_run(trials, engine=engine)
                print(f"| {engine} | {r['trials']} | {r['seconds']:.1f} | {r['trials'] / r['seconds']:.4g} | "
                      f"{r['maxrss_mb']:.0f} | {r['outer']:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

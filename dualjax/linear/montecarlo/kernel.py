"""A compiled CPU kernel for the Monte Carlo pool: the fast engine's step, vectorized across trials.

On a CPU, XLA splits the vmapped step of :func:`dualjax.linear.montecarlo.engines.fast_engine` into one
loop fusion per carried array (~13 for SG, ~17 for EMA), each streaming the whole pool through
memory again. This module runs the *same* per-trial arithmetic, in the same order,

    u = B a,  r = ρ u − τ c,  a⁺ = a − η(Bᵀ r + λ a),  B⁺ = B − η(r aᵀ + λ B),
    c⁺ = a⁺ (SG)  or  α c + (1 − α) a⁺ (EMA),
    E(a, B) = ½ρ‖Ba‖² − τ⟨Ba, a⟩ + ½σ‖a‖² + ½λ(‖a‖² + ‖B‖²),  σ = τ²/ρ,  F likewise with c,

with the masking of :func:`dualjax.linear.montecarlo.slots.advance_slot` (E, F and the divergence test
of θ_t checked at the start of the next iteration; a stopped slot stays frozen), as one loop over
lanes per step. The loop body is generated for a fixed n (every index unrolled, so the body is
straight-line scalar code), compiled by numba, and LLVM vectorizes it across lanes (8 float64
lanes per instruction with AVX-512, else 4). Lanes are processed in blocks of :data:`LANES` so
that a block's state stays in L1 while it takes its steps.

It is a host kernel: each scalar of a slot (ρ, a_j, B_ij, t, E, the flags, ...) is one float64
array over lanes, in practice a row of the pool matrix that :mod:`dualjax.linear.montecarlo.hostpool`
keeps on the host. It implements the fast engine's closed form, not a new model;
``tests/test_montecarlo_kernel.py`` checks that it gives the fast engine's step counts, verdicts
and flags trial for trial.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import importlib.util
import os
import sys
import threading
from typing import Callable

import numpy as np

from dualjax import dynamics

# numba is a pinned dependency, imported only when a kernel is built (~0.2 s); on a platform
# without its wheels ``auto`` falls back to the XLA engine.
AVAILABLE = all(importlib.util.find_spec(name) is not None for name in ("numba", "llvmlite"))

# The lane loop touches ~20 arrays. LLVM vectorizes it only after checking at run time that they
# do not overlap, and by default gives up beyond 8 (runtime) / 128 (vectorize) such checks: the
# SG loop would stay scalar without the first and the EMA loop without both (3-4x slower).
VECTORIZER_OPTIONS = {"runtime-memory-check-threshold": 1024, "vectorize-memory-check-threshold": 1024}
LLVM_DEFAULTS = {"runtime-memory-check-threshold": 8, "vectorize-memory-check-threshold": 128,
                 "force-vector-width": 0}
# With AVX-512, LLVM's cost model still picks 4 lanes (256-bit); 8 lanes are ~1.25x faster here.
WIDE_VECTORS = {"force-vector-width": 8}
LANES = 64  # lanes per block: the block's ~20 state arrays (64 × 8 B each) stay in L1

# Arrays of one pool slot besides the dynamic state, in the kernel's argument order.
TRIAL_FIELDS = ("rho", "tau", "lam")
SLOT_FIELDS = ("t", "inc2", "E", "F", "e_up", "f_up", "max_rise", "bad", "live")


def state_names(n: int, ema: bool) -> list[str]:
    """One array per scalar of the dynamic state: a_j, B_ij and (EMA) the teacher c_j."""
    names = [f"a{j}" for j in range(n)] + [f"B{i}{j}" for i in range(n) for j in range(n)]
    return names + ([f"c{j}" for j in range(n)] if ema else [])


def step_source(n: int, ema: bool) -> str:
    """Python source of ``advance(<arrays>, num_steps, <constants>) -> None`` for state size n.

    The formulas are written out with the same operation order as the fast engine (Python's
    left-to-right evaluation of its list comprehensions), so the two agree to the last bit
    wherever the compilers do not contract a multiply-add.
    """
    a = [f"a{j}" for j in range(n)]
    B = [[f"B{i}{j}" for j in range(n)] for i in range(n)]
    c = [f"c{j}" for j in range(n)] if ema else a
    u = [f"u{i}" for i in range(n)]
    sa = [f"sa{j}" for j in range(n)]
    sB = [[f"sB{i}{j}" for j in range(n)] for i in range(n)]
    dc = [f"dc{j}" for j in range(n)]

    def dot(x, y):
        return "(" + " + ".join(f"{p} * {q}" for p, q in zip(x, y)) + ")"

    def rows_sq(M):
        return " + ".join(dot(row, row) for row in M)

    def rose(new, old):  # dynamics.rose, written out for numba
        return f"({new} > {old} * (1 + rtol * np.sign({old})) + atol)"

    body = [f"{x} = {x}_[l]" for x in state_names(n, ema)]
    body += [
        "rho = rho_[l]", "tau = tau_[l]", "lam = lam_[l]", "t = t_[l]", "bad = bad_[l] != 0.0",
        # slots.slot_active
        "act = (live_[l] != 0.0) & (t < max_steps) & (inc2_[l] >= tol2) & (not bad)",
        # slots._check of the current point: engine.measure, then the E/F/divergence records
        *[f"{u[i]} = {dot(B[i], a)}" for i in range(n)],
        f"sq_a = {dot(a, a)}",
        f"sq_B = {rows_sq(B)}",
        f"uu = {dot(u, u)}",
        "sigma = tau * tau / rho",
        "reg = 0.5 * lam * (sq_a + sq_B)",
        f"E_new = 0.5 * rho * uu - tau * {dot(u, a)} + 0.5 * sigma * sq_a + reg",
        "sq = sq_a + sq_B",
        "diverged = (not math.isfinite(sq)) | (sq > max_norm2)",
        "due = act & (t > 0)",
        "ok = due & (not diverged)",
        "E_old = E_[l]",
        "E_[l] = E_new if due else E_old",
        f"e_up_[l] = 1.0 if (e_up_[l] != 0.0) | (ok & {rose('E_new', 'E_old')}) else 0.0",
        "rise = max_rise_[l]",
        "max_rise_[l] = max(rise, E_new - E_old) if ok else rise",
    ]
    if ema:
        body += [
            f"F_new = 0.5 * rho * uu - tau * {dot(u, c)} + 0.5 * sigma * {dot(c, c)} + reg",
            "F_old = F_[l]",
            "F_[l] = F_new if due else F_old",
            f"f_up_[l] = 1.0 if (f_up_[l] != 0.0) | (ok & {rose('F_new', 'F_old')}) else 0.0",
        ]
    body += [
        "bad = bad | (due & diverged)",
        "bad_[l] = 1.0 if bad else 0.0",
        "go = act & (not bad)",
        # fast_engine.step
        *[f"r{i} = rho * {u[i]} - tau * {c[i]}" for i in range(n)],
        *[f"{sa[j]} = eta * ({' + '.join(f'{B[i][j]} * r{i}' for i in range(n))} + lam * {a[j]})" for j in range(n)],
        *[f"{sB[i][j]} = eta * (r{i} * {a[j]} + lam * {B[i][j]})" for i in range(n) for j in range(n)],
        f"dB = {rows_sq(sB)}",
        *[f"{a[j]}_[l] = {a[j]} - {sa[j]} if go else {a[j]}" for j in range(n)],
        *[f"{B[i][j]}_[l] = {B[i][j]} - {sB[i][j]} if go else {B[i][j]}" for i in range(n) for j in range(n)],
    ]
    if ema:
        body += [f"c_new{j} = alpha * {c[j]} + (1 - alpha) * ({a[j]} - {sa[j]})" for j in range(n)]
        body += [f"{dc[j]} = c_new{j} - {c[j]}" for j in range(n)]
        body += [f"{c[j]}_[l] = c_new{j} if go else {c[j]}" for j in range(n)]
        body += [f"inc = {dot(sa, sa)} + dB + {dot(dc, dc)}"]
    else:
        body += [f"inc = 2 * {dot(sa, sa)} + dB"]
    body += ["inc2_[l] = inc if go else inc2_[l]", "t_[l] = t + 1.0 if go else t", "active += go"]

    arrays = argument_names(n, ema)
    # Each block works on views starting at 0, so LLVM sees a non-negative unit-stride index
    # (no wraparound select) and can vectorize the lane loop.
    views = [f"{x}_ = {x}_all[l0:l1]" for x in arrays]
    indent = lambda lines, k: "\n".join(" " * k + s for s in lines)  # noqa: E731
    return f'''def advance({", ".join(x + "_all" for x in arrays)}, num_steps,
            eta, alpha, max_steps, tol2, max_norm2, rtol, atol):
    size = rho_all.shape[0]
    for l0 in range(0, size, {LANES}):
        l1 = min(l0 + {LANES}, size)
{indent(views, 8)}
        for _ in range(num_steps):
            active = 0
            for l in range(l1 - l0):
{indent(body, 16)}
            if active == 0:
                break
'''


def _require():
    if not AVAILABLE:
        raise RuntimeError("engine='kernel' needs numba (a dependency of dualjax); it could not be imported. "
                           "Use engine='fast' (XLA) instead.")


# numba's settings of the kernel; with the generated source and the versions they name its disk cache.
NJIT_OPTIONS = {"boundscheck": False, "nogil": True, "error_model": "numpy"}
MODULE_HEADER = ('"""A Monte Carlo kernel generated by dualjax.linear.montecarlo.kernel.step_source '
                 '(safe to delete)."""\n\nimport math\n\nimport numpy as np\n\n\n')


def compile_kernel(n: int, ema: bool) -> Callable:
    """The compiled ``advance`` for state size n (SG or EMA), cached per process (~1-3 s to build)
    and, while :func:`dualjax.cache.enable` is on, on disk (:func:`kernel_module`): a second
    process then loads numba's object code instead of compiling (~0.1 s)."""
    from dualjax import cache  # noqa: PLC0415

    folder = cache.kernel_dir()
    return _compile_kernel(int(n), bool(ema), None if folder is None else str(folder))


def kernel_module(n: int, ema: bool, folder: str | os.PathLike, options: dict) -> str:
    """Write the kernel's module (:data:`MODULE_HEADER` + :func:`step_source`) into ``folder``
    once, named by a hash of its text, numba's settings, the LLVM ``options`` and the numba /
    llvmlite versions, and return its path. numba's ``cache=True`` keeps the object code in
    ``folder/__pycache__``, valid while the file is unchanged: so an existing file is never
    rewritten (a second writer's copy is dropped), and any change to the kernel is a new file."""
    import llvmlite  # noqa: PLC0415 - see AVAILABLE
    import numba  # noqa: PLC0415

    text = MODULE_HEADER + step_source(n, ema)
    stamp = "\n".join([text, "dualjax kernel module 1", repr(NJIT_OPTIONS), repr(sorted(options.items())),
                        numba.__version__, llvmlite.__version__])
    name = f"dualjax_kernel_n{n}_{'ema' if ema else 'sg'}_{hashlib.sha256(stamp.encode()).hexdigest()[:16]}"
    path = os.path.join(folder, name + ".py")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        try:
            os.link(tmp, path)  # fails if another process got there first: its file stays
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path


def _python_kernel(n: int, ema: bool, folder: str | None, options: dict) -> Callable:
    """The generated ``advance`` as a Python function: from its module file in ``folder`` (so
    numba can cache it), or compiled from the source in memory."""
    if folder is None:
        namespace: dict = {}
        text = MODULE_HEADER + step_source(n, ema)
        exec(compile(text, f"<dualjax.linear.montecarlo.kernel n={n} ema={ema}>", "exec"), namespace)
        return namespace["advance"]
    path = kernel_module(n, ema, folder, options)
    name = os.path.basename(path)[:-3]
    if name not in sys.modules:  # numba's cache finds the function's globals through its module
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name].advance


_KERNELS: dict[tuple, Callable] = {}  # the compiled kernels of this process
# One kernel compiles at a time: the LLVM options are process-wide (another kernel's compile must
# not reset them mid-way), and a kernel asked for while it compiles (prefetch) is built once.
_BUILD_LOCK = threading.Lock()


def _compile_kernel(n: int, ema: bool, folder: str | None) -> Callable:
    with _BUILD_LOCK:
        if (n, ema, folder) not in _KERNELS:
            _KERNELS[n, ema, folder] = _build_kernel(n, ema, folder)
        return _KERNELS[n, ema, folder]


def prefetch(kernels: list[tuple[int, bool]]) -> threading.Thread | None:
    """Compile (or load) the kernels ``[(n, ema), ...]`` on a background thread and return it
    (None for no kernels).

    numba's compile is mostly Python and LLVM calls that release the GIL, XLA's compile releases
    it too: a cold study that starts this before tracing and compiling its JAX programs does
    both at once on two cores. :func:`compile_kernel` waits for a kernel still being built."""
    if not kernels:
        return None
    _require()
    from dualjax import cache  # noqa: PLC0415

    folder = cache.kernel_dir()  # read here: the caller's setting, whatever happens meanwhile
    keys = [(int(n), bool(ema), None if folder is None else str(folder)) for n, ema in dict.fromkeys(kernels)]
    thread = threading.Thread(target=lambda: [_compile_kernel(*key) for key in keys], daemon=True,
                              name="dualjax-kernel-prefetch")
    thread.start()
    return thread


def _build_kernel(n: int, ema: bool, folder: str | None) -> Callable:
    _require()
    import llvmlite.binding as llvm  # noqa: PLC0415 - see AVAILABLE
    import numba  # noqa: PLC0415

    wide = bool(llvm.get_host_cpu_features().get("avx512f", False))
    options = {**VECTORIZER_OPTIONS, **(WIDE_VECTORS if wide else {})}
    kernel = numba.njit(_python_kernel(n, ema, folder, options), cache=folder is not None, **NJIT_OPTIONS)
    # Compile now (one call on empty float64 arrays) under the vectorizer options, then put LLVM's
    # defaults back so nothing else numba compiles in this process is affected. Object code
    # loaded from numba's cache was compiled under the same options (they name the module,
    # :func:`kernel_module`), so it is just as vectorized. Further compilation is disabled: an
    # argument of another type (say a strided row) is then a TypeError, not a silent second,
    # scalar build outside the options.
    empty = [np.zeros(0) for _ in argument_names(n, ema)]
    _set_llvm_options(llvm, options)
    try:
        kernel(*empty, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    finally:
        _set_llvm_options(llvm, LLVM_DEFAULTS)
    kernel.disable_compile()
    return kernel


def _set_llvm_options(llvm, options: dict[str, int]) -> None:
    for name, value in options.items():
        llvm.set_option("dualjax", f"-{name}={value}")


def argument_names(n: int, ema: bool) -> list[str]:
    """The kernel's arrays, in argument order: trial constants, state, slot fields."""
    slot = [x for x in SLOT_FIELDS if ema or x not in ("F", "f_up")]  # SG carries no F: F(θ, ψ, θ) = E
    return list(TRIAL_FIELDS) + state_names(n, ema) + slot


def active(rows: dict[str, np.ndarray], cfg) -> np.ndarray:
    """:func:`dualjax.linear.montecarlo.slots.slot_active` on the host rows: live, under budget,
    last increment ≥ tol, not diverged."""
    return ((rows["live"] != 0) & (rows["t"] < cfg.max_steps) & (rows["inc2"] >= float(cfg.tol) ** 2)
            & (rows["bad"] == 0))


def advance(rows: dict[str, np.ndarray], num_steps: int, cfg, form, threads: int = 1) -> None:
    """``num_steps`` masked steps of every lane, in place. ``rows`` maps each of
    :func:`argument_names` to a contiguous float64 array over lanes (flags are 0.0 / 1.0 and the
    step count t is a float: exact below 2**53). ``form`` is the rule's
    :class:`~dualjax.linear.montecarlo.engines.ClosedForm` (its α and whether a copy is carried).

    ``threads`` > 1 splits the lanes into that many ranges of whole blocks, run at once by
    threads (the kernel releases the GIL). Lanes are independent, so the result is the same.
    """
    kernel = compile_kernel(cfg.n, form.copy)
    args = [rows[name] for name in argument_names(cfg.n, form.copy)]
    consts = (int(num_steps), float(cfg.eta), float(form.alpha), float(cfg.max_steps), float(cfg.tol) ** 2,
              float(cfg.max_norm) ** 2, dynamics.E_RTOL, dynamics.E_ATOL)
    blocks = -(-args[0].shape[0] // LANES)
    threads = min(int(threads), blocks)
    if threads <= 1:
        kernel(*args, *consts)
        return
    edges = [LANES * (blocks * i // threads) for i in range(threads + 1)]
    ranges = list(zip(edges[:-1], edges[1:]))
    list(_executor(threads).map(lambda r: kernel(*(x[r[0]:r[1]] for x in args), *consts), ranges))


@functools.lru_cache(maxsize=None)
def _executor(threads: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="dualjax-kernel")


def default_threads() -> int:
    """The cores this process may run on (``os.sched_getaffinity``, else ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


"""`dualjax equilibria | stability | integrability`: JSON contents, tables, and named input errors."""

import json

import numpy as np
import pytest

from dualjax import cli
from dualjax.commands import schemas


def _run(capsys, *argv):
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_equilibria_json_lists_every_equilibrium(capsys):
    rc, out, _ = _run(capsys, "equilibria", "--rho", "[[1, 0.3], [0.3, 0.8]]", "--tau", "[[0.9, 0.2], [-0.1, 0.7]]",
                      "--lam", "0.05", "--n", "4", "--json")
    assert rc == 0
    data = json.loads(out)
    schemas.validate(data, schemas.EQUILIBRIA)
    assert data["instance"]["n"] == 4 and data["instance"]["lam"] == 0.05 and data["instance"]["seed"] is None
    assert data["instance"]["rho"] == [[1, 0.3], [0.3, 0.8]] and data["instance"]["data"] == "given"
    eqs = data["equilibria"]
    assert data["counts"]["complex_full_rank"] == 6 and data["counts"]["bezout_bound"] == 8
    assert sum(e["positive_definite"] for e in eqs) == 4 and [e["rank"] for e in eqs][-1] == 0
    rho, tau = np.array([[1, 0.3], [0.3, 0.8]]), np.array([[0.9, 0.2], [-0.1, 0.7]])
    for e in eqs:
        assert set(e) >= {"S", "rank", "positive_definite", "residual", "stability"}
        S = np.array(e["S"])
        assert e["residual"] < 1e-9 and np.linalg.matrix_rank(S, tol=1e-8) == e["rank"]
        M = S @ rho + 0.05 * np.eye(2)
        assert np.linalg.norm(M @ S @ M - S @ tau.T @ S @ tau) < 1e-9 * (1 + np.linalg.norm(S) ** 2)
        assert e["stability"]["class"] in ("stable", "saddle", "degenerate")
    assert [e["stability"]["class"] for e in eqs if e["positive_definite"]].count("stable") == 1


def test_stability_table_m1(capsys):
    rc, out, _ = _run(capsys, "stability", "--rho", "1.0", "--tau", "0.8", "--n", "3")
    assert rc == 0
    lines = [ln for ln in out.splitlines() if ln[:1].isdigit() and "[" in ln]
    assert len(lines) == 3  # outer sphere, inner sphere, origin
    assert "stable" in lines[0] and "saddle(1)" in lines[1] and "2/2" in lines[0]
    # no step size stabilizes the saddle: said in words, not as η_max = 0
    assert "none (unstable)" in lines[1] and "none (unstable)" not in lines[0]


def test_stability_json_carries_full_spectra(capsys):
    """Every spectrum is a real J's (closed under conjugation), the transversal one is the full one less
    the orbit's zeros and decides the class; at the origin J = −λ I on the student (A: n×m, B: n×n)
    and −k I on the EMA teacher C (n×m) — the closed form."""
    rc, out, _ = _run(capsys, "stability", "--rho", "1.0", "--tau", "0.8", "--n", "3", "--lam", "0.05",
                      "--k", "2", "--json")
    assert rc == 0
    data = json.loads(out)
    schemas.validate(data, schemas.STABILITY)
    assert data["instance"] == {"m": 1, "n": 3, "lam": 0.05, "rho": [[1.0]], "tau": [[0.8]],
                                "data": "given", "seed": None, "kind": None}
    eqs = data["equilibria"]
    for e in eqs:
        st = e["stability"]
        assert st["orbit_dim"] == st["sg"]["orbit_dim"] == 3 * e["rank"] - e["rank"] * (e["rank"] + 1) // 2
        for rule in ("sg", "ema"):
            v = st[rule]
            full = np.array(v["spectrum"]["real"]) + 1j * np.array(v["spectrum"]["imag"])
            trans = np.array(v["transversal"]["real"]) + 1j * np.array(v["transversal"]["imag"])
            assert len(full) - v["orbit_dim"] == len(trans)
            assert np.isclose(trans.real.max(), v["max_real_transversal"])
            assert (v["class"] == "stable") == bool(trans.real.max() < 0)
            assert sorted(np.round(full, 9), key=lambda z: (z.real, z.imag)) == sorted(  # the real J's spectrum
                np.round(full.conj(), 9), key=lambda z: (z.real, z.imag))
    origin = eqs[-1]["stability"]
    assert eqs[-1]["rank"] == 0
    sg, ema = (np.array(origin[r]["spectrum"]["real"]) for r in ("sg", "ema"))
    assert np.allclose(sg, -0.05)
    n_teacher = len(ema) - len(sg)
    assert n_teacher == 3 and np.allclose(np.sort(ema)[:n_teacher], -2.0) and np.allclose(np.sort(ema)[n_teacher:], -0.05)


def test_random_instance_is_printed_and_reproducible(capsys):
    import jax

    from dualjax.linear import model

    rc, out, _ = _run(capsys, "equilibria", "--m", "2", "--seed", "3", "--lam", "0.1", "--json")
    assert rc == 0
    inst = json.loads(out)["instance"]
    assert (inst["m"], inst["n"], inst["seed"], inst["kind"], inst["data"]) == (2, 3, 3, "gauss", "random")
    with jax.enable_x64(True):
        mom = model.random_moments(jax.random.PRNGKey(3), 2, kind="gauss")
    assert np.allclose(inst["rho"], np.asarray(mom.rho)) and np.allclose(inst["tau"], np.asarray(mom.tau))
    rc, table, _ = _run(capsys, "stability", "--m", "2", "--seed", "3", "--lam", "0.1", "--spectra")
    assert rc == 0
    assert table.startswith("instance: m=2, n=3, λ=0.1, random gauss data, --m 2 --seed 3")
    assert f"{inst['rho'][0][0]:.4g}" in table.splitlines()[1]
    spectra = [ln for ln in table.splitlines() if ln.startswith("  #")]
    rows = [ln for ln in table.splitlines() if ln[:1].isdigit() and "[" in ln]
    assert len(spectra) == 2 * len(rows) and len(rows) >= 2


def test_schema_checker_names_each_violation():
    good = {"real": [1.0, -2], "imag": [0.0, 0.0]}
    assert schemas.errors(good, schemas.EIGENVALUES) == []
    bad = schemas.errors({"real": [1.0, "x"], "imag": None}, schemas.EIGENVALUES)
    assert bad == ["$.real[1]: expected number, got str 'x'", "$.imag: expected array, got NoneType None"]
    assert schemas.errors({"rank": True}, {"type": "object", "required": ["S"], "properties": {"rank": schemas.INTEGER}}) \
        == ["$: missing key 'S'", "$.rank: expected integer, got bool True"]
    with pytest.raises(ValueError, match="'unstable' not one of"):
        schemas.validate("unstable", schemas.CLASS)


def test_schemas_are_json_schema():
    """The same dicts under a real JSON Schema validator (jsonschema comes with nbformat)."""
    jsonschema = pytest.importorskip("jsonschema")
    for schema in (schemas.INSTANCE, schemas.EIGENVALUES, schemas.EQUILIBRIA, schemas.STABILITY):
        jsonschema.Draft202012Validator.check_schema(schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"real": [1.0], "imag": ["i"]}, schemas.EIGENVALUES)


def test_integrability_json(capsys):
    rc, out, _ = _run(capsys, "integrability", "--m", "2", "--seed", "1", "--probes", "32", "--json")
    assert rc == 0
    res = json.loads(out)["results"]
    assert res["sg"]["exact"]["asymmetry"] > 0.05 and res["plain"]["exact"]["asymmetry"] < 1e-12


@pytest.mark.parametrize("argv,needle", [
    (["equilibria", "--rho", "1", "--tau", "0.5", "--lam", "-1"], "lam"),
    (["equilibria", "--rho", "[[1, 2], [2, 1]]", "--tau", "[[1, 0], [0, 1]]"], "rho"),
    (["equilibria", "--rho", "[[1, 0], [0, 1]]", "--tau", "[1, 2, 3]"], "tau"),
    (["stability", "--rho", "[[1, 0], [0, 1]]", "--tau", "[[1, 0], [0, 1]]", "--n", "2"], "--n"),
    (["stability", "--rho", "{oops", "--tau", "1"], "--rho"),
    (["stability", "--rho", "1", "--tau", "0.8", "--k", "0"], "k"),
    (["integrability", "--m", "0"], "m"),
    (["equilibria"], "--m"),
])
def test_bad_input_names_the_value(capsys, argv, needle):
    rc, _, err = _run(capsys, *argv)
    assert rc == 2 and needle in err

"""`dualjax equilibria | stability | integrability`: JSON contents, tables, and named input errors."""

import json

import numpy as np
import pytest

from dualjax import cli


def _run(capsys, *argv):
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_equilibria_json_lists_every_equilibrium(capsys):
    rc, out, _ = _run(capsys, "equilibria", "--rho", "[[1, 0.3], [0.3, 0.8]]", "--tau", "[[0.9, 0.2], [-0.1, 0.7]]",
                      "--lam", "0.05", "--n", "4", "--json")
    assert rc == 0
    data = json.loads(out)
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

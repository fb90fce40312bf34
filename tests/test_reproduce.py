"""The report machinery and the `dualjax reproduce` / `dualjax linear` commands."""

import json

import pytest

from dualjax import cli, reproduce
from dualjax.report import ClaimResult, write_report


def test_report_renders_every_row_and_embeds_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_path = tmp_path / "f.png"
    plt.plot([0, 1]); plt.savefig(fig_path); plt.close()
    rows = [ClaimResult("a", "Claim A", "paper says a", "we saw a", "reproduced", "because", [str(fig_path)]),
            ClaimResult("b", "Claim | B", "paper says b", "we saw b", "partly", "half")]
    paths = write_report(rows, {"mode": "quick", "seconds": 1.0}, tmp_path)
    md = paths["md"].read_text()
    assert "Claim A" in md and "Claim \\| B" in md and "**partly**" in md and "f.png" in md
    html = paths["html"].read_text()
    assert "data:image/png;base64," in html and html.count("<tr>") == 3
    data = json.loads(paths["json"].read_text())
    assert [c["verdict"] for c in data["claims"]] == ["reproduced", "partly"]
    with pytest.raises(ValueError, match="verdict must be one of"):
        ClaimResult("c", "C", "", "", "maybe", "")


def test_reproduce_cli_one_claim(tmp_path, capsys):
    rc = cli.main(["reproduce", "--out", str(tmp_path), "--only", "prop3.1"])
    assert rc == 0
    data = json.loads((tmp_path / "report.json").read_text())
    (claim,) = data["claims"]
    assert claim["key"] == "prop3.1" and claim["verdict"] == "reproduced"
    assert (tmp_path / "linear" / "linear_dynamics.png").stat().st_size > 10_000
    with pytest.raises(SystemExit, match="unknown claim"):
        cli.main(["reproduce", "--out", str(tmp_path), "--only", "prop9.9"])


def test_claim_keys_unique():
    keys = [k for k, _ in reproduce.CLAIMS]
    assert len(keys) == len(set(keys))


def test_linear_cli_errors_name_the_value(tmp_path):
    with pytest.raises(SystemExit, match="lam must be > 0.*-0.5"):
        cli.main(["linear", "--lam", "-0.5", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="rho must be positive"):
        cli.main(["linear", "--rho", "[[1, 0], [0, -1]]", "--tau", "[[1, 0], [0, 1]]", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--rho must be a JSON"):
        cli.main(["linear", "--rho", "[[1, 0]", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        cli.main(["nonsense-command"])

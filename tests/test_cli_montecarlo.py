"""``dualjax montecarlo``: files, columns, determinism across device counts, clear errors."""

import csv
import json

from dualjax import cli
from dualjax.linear import montecarlo as mc

ARGS = ["--trials", "40", "--rules", "sg,ema", "--seed", "3", "--max-steps", "3000", "--eta", "0.1",
        "--chunk", "16", "--no-figures"]


def test_cli_writes_summary_and_csv_identically_on_1_and_8_devices(tmp_path, capsys):
    outs = {}
    for d in (1, 8):
        out = tmp_path / f"d{d}"
        assert cli.main(["montecarlo", *ARGS, "--devices", str(d), "--out", str(out)]) == 0
        summ = json.loads((out / "summary.json").read_text())
        assert set(summ["rules"]) == {"sg", "ema"}
        for rule in ("sg", "ema"):
            s = summ["rules"][rule]
            assert s["trials"] == 40
            assert abs(sum(v["fraction"] for v in s["fractions"].values()) - 1) < 1e-12
            for v in s["fractions_given_delta_nonneg"].values():
                assert v["ci95"][0] <= v["fraction"] <= v["ci95"][1]
            assert {"e_increased", "f_increased", "steps", "delta_nonneg"} <= set(s)
        with open(out / "trials.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 80
        assert {"rule", "rho", "tau", "lam", "outcome", "steps", "final_norm", "e_increased"} <= set(rows[0])
        assert {r["outcome"] for r in rows} <= set(mc.OUTCOMES)
        # the CSV agrees with the summary
        n_outer = sum(r["outcome"] == "outer" and r["rule"] == "sg" for r in rows)
        assert n_outer == summ["rules"]["sg"]["fractions"]["outer"]["count"]
        outs[d] = ((out / "trials.csv").read_text(), summ["rules"])
    assert outs[1] == outs[8]
    assert '"rules"' in capsys.readouterr().out


def test_cli_bad_input_is_a_clear_error(tmp_path, capsys):
    for bad, word in ((["--trials", "0"], "trials"), (["--alpha", "2"], "alpha"), (["--rules", "sg,foo"], "foo"),
                      (["--eta", "-1"], "eta")):
        args = ["montecarlo", "--out", str(tmp_path / "x"), "--trials", "10", *bad]
        assert cli.main(args) == 2
        assert word in capsys.readouterr().err

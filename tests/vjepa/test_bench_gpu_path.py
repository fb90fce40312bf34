"""The GPU part of benchmarks/bench_vjepa_scale.py (ViT-B bf16 clips/s and MFU) as a dry run on the
CPU at the tiny config: no GPU was lent to the sessions that wrote it, so this keeps the code path
that a GPU session will run working, and checks its FLOP accounting."""

import json

import numpy as np


def test_gpu_part_dry_run_reports_clips_and_mfu(tmp_path, capsys, repo_script):
    bench = repo_script("benchmarks/bench_vjepa_scale.py")
    out = tmp_path / "scale.json"
    rc = bench.main(["--skip-scaling", "--force-gpu-part", "--gpu-config", "tiny", "--gpu-batch", "2",
                     "--gpu-steps", "1", "--peak-tflops", "2.0", "--out", str(out)])
    assert rc == 0
    g = json.loads(out.read_text())["gpu"]
    assert g["compute_dtype"] == "bfloat16" and g["batch"] == 2 and g["clips_per_s"] > 0
    assert np.isfinite(g["F"])
    # MFU = XLA-counted FLOPs / step time / peak, as documented
    np.testing.assert_allclose(g["mfu_xla"], g["xla_tflop_per_step"] / g["step_s"] / g["peak_tflops"], rtol=1e-9)
    # the analytic 6·N·tokens-style count is the same order as XLA's count of the compiled step
    assert 0.5 < g["analytic_tflop_per_step"] / g["xla_tflop_per_step"] < 1.5
    assert "MFU" in capsys.readouterr().out
    # the card's peak is found from its name when not given (the longest matching name wins)
    assert bench.peak_for("NVIDIA H100 80GB HBM3") == 989.0
    assert bench.peak_for("NVIDIA H100 PCIe") == 756.0
    assert bench.peak_for("NVIDIA H200") == 989.0
    assert bench.peak_for("cpu") == 0.0

"""The prepared GPU check runs end to end on the CPU at tiny sizes (--dry-run)."""

import importlib.util
import json
import subprocess
import sys

from nrf import records, store


def test_device_check_dry_run(tmp_path):
    out = tmp_path / "out"
    env = {"NRF_STORE": str(tmp_path / "store"), "NRF_CACHE": str(tmp_path / "cache"), "NRF_THREADS": "2"}
    done = subprocess.run(
        [
            sys.executable,
            str(store.REPO / "bench" / "device_check.py"),
            str(out),
            "--dry-run",
            "--profile",
            "smoke",
            "--sections",
            "models",
            "--budget",
            "600",
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "device_check.json").read_text())
    assert report["agreement"]["agrees"] and report["benchmark"]["matmul_flops"] > 0
    b = report["benchmark"]
    assert b["training"]["images_per_s"] > 0 and 0 < b["training"]["share_of_peak"]
    assert list(b["at_once"]) == ["1", "2", "4"] and all(rate > 0 for rate in b["at_once"].values())
    assert list(b["pgd"]) == ["nrf (bf16 autocast on GPU)", "plain fp32 loop", "torchattacks PGDL2 (fp32)"]
    assert all(rate > 0 for name, rate in b["pgd"].items() if not name.startswith("torchattacks"))
    if importlib.util.find_spec("torchattacks") is None:  # the book's environment: a row all the same
        assert b["pgd"]["torchattacks PGDL2 (fp32)"] is None
        row = "| PGD, torchattacks PGDL2 (fp32) (images x steps/s) | not installed |"
        assert row in (out / "device_check.md").read_text()
    assert [r["stage"] for r in report["stages"]] == ["models: natural", "models"]
    assert all(r["status"] == "computed" for r in report["stages"])
    assert report["stages"][0]["peak_memory_mib"] > 50 and report["stages"][0]["peak_gpu_mib"] is None  # CPU
    record = records.load(out / "results" / "smoke" / "models.json")
    assert (
        record["options"]["roles"] == ["natural"] and "| models | computed |" in (out / "device_check.md").read_text()
    )
    table = json.loads((out / "results" / "smoke" / "reproduce.json").read_text())
    assert [r["stage"] for r in table["stages"]] == ["models: natural", "models"]

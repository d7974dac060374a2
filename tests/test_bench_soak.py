"""The soak benchmark runs end to end on a small scale and reports what it promises."""

from __future__ import annotations

import re

from bench import soak_bench


def test_the_soak_bench_reports_memory_disk_and_start_cost_every_interval(tmp_path, capsys):
    argv = ["--commands", "3000", "--report-every", "1500", "--snapshot-every", "500"]
    argv += ["--archive-segment-rows", "256", "--dir", str(tmp_path)]
    assert soak_bench.main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " cmds " in line]
    assert len(lines) == 2
    for line in lines:
        assert re.search(r"RSS +\d+ MB, writer +\d+ MB \| coids [\d,]+ open [\d,]+", line)
        assert re.search(r"disk live +\d+ MB, journal archive +\d+ MB, log archive +\d+ MB", line)
        assert re.search(r"journal rows live [\d,]+ \| records [\d,]+ \([\d,]+ live\)", line)
        assert re.search(r"start [\d.]+ s \(chains [\d.]+ s, seq \d+\)", line)
    assert list((tmp_path / "archive").glob("journal-*.seg"))  # archiving ran, as serve runs it
    assert list((tmp_path / "archive").glob("log-*.seg"))

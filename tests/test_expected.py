"""The normalisation rule for expected outputs: what varies is masked, nothing else."""

from __future__ import annotations

from runner.expected import normalise


def test_timings_addresses_and_versions_are_masked() -> None:
    raw = (
        "starting <function main at 0x7f2bf04804a0> with args () {}\n"
        "finished <function main at 0x7f2bf04804a0> in 4.5070 second(s)\n"
        "Connected! Postgres version is ServerVersion(major=18, minor=0, micro=6, releaselevel='final', serial=0)\n"
    )
    assert normalise(raw) == (
        "starting <function main at 0x...> with args () {}\n"
        "finished <function main at 0x...> in N.NNNN second(s)\n"
        "Connected! Postgres version is ServerVersion(...)\n"
    )


def test_everything_else_is_kept() -> None:
    text = "query 1 succeeded: SELECT 109\nbrand 9999 present after rollback: False\n"
    assert normalise(text) == text

"""memsched rt admit/run/noise: bad input is one clear line on stderr and exit status 2."""

from __future__ import annotations

import pytest

from memsched.cli import main


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["rt", "admit", "--runtime", "2", "--deadline", "10ms"], "'--runtime'"),
        (["rt", "admit", "--runtime", "2ms", "--deadline", "10 parsecs"], "'--deadline'"),
        (["rt", "admit", "--runtime", "2ms", "--deadline", "10ms", "--flags", "bogus"], "'flags'"),
        (
            ["rt", "run", "--runtime", "1ms", "--deadline", "10ms", "--period", "-1ms", "--", "true"],
            "'--period'",
        ),
        (["rt", "noise", "--duration", "0s"], "'--duration'"),
        (["rt", "noise", "--threshold", "5"], "'--threshold'"),
        (["rt", "noise", "--cpus", "3-1"], "'--cpus'"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each bad value is refused before any work, naming the option, with nothing on stdout."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("memsched: error: ") and field in err


def test_run_without_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """rt run needs a command after --."""
    assert main(["rt", "run", "--runtime", "1ms", "--deadline", "10ms"]) == 2
    err = capsys.readouterr().err
    assert "Missing argument" in err and "COMMAND" in err

"""Every command block of README.md and docs/*.md is checked against the program.

A fenced block's mode is the marker comment on the line just before its fence (default ``run``):

* ``run``: each ``memsched`` line runs in process and must exit 0; each Python block is executed;
* ``<!-- docs-test: parse; run: PREFIX[, PREFIX] - WHY -->``: each ``memsched`` line is parsed against the
  CLI (subcommands, options, types: what a typo would break) without running; lines starting with a listed
  prefix also run in full. Python blocks are compiled and their imports executed;
* ``<!-- docs-test: skip - WHY -->``: not executed (what the test environment must not do, e.g. install).

TOML blocks are loaded by the loader they document (a topology, a pressure scenario). Every marker must say
why; a block without a marker that takes long is a bug of the docs.
"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main

from memsched.cli import app, main

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!-- docs-test: (?P<mode>run|parse|skip)(?:; run: (?P<run>.+?))? - (?P<why>.+) -->")
FENCE = re.compile(r"^```(?P<lang>\w*)\s*$")


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    text: str
    mode: str
    run_prefixes: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    out = []
    for path in FILES:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            start = i
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            prev = lines[start - 1] if start else ""
            mk = MARKER.search(prev)
            if prev.startswith("<!-- docs-test") and mk is None:
                raise AssertionError(f"{path}:{start}: malformed docs-test marker {prev!r}")
            prefixes = tuple(p.strip() for p in (mk.group("run") or "").split(",") if p.strip()) if mk else ()
            out.append(
                Block(path, start + 1, m.group("lang"), "\n".join(lines[start + 1 : j]),
                      mk.group("mode") if mk else "run", prefixes)
            )
            i = j + 1
    return out


ALL = blocks()
COMMANDS = [b for b in ALL if b.lang in ("sh", "bash", "console")]
PYTHON = [b for b in ALL if b.lang == "python"]
TOML = [b for b in ALL if b.lang == "toml"]


def command_lines(text: str) -> list[list[str]]:
    """The ``memsched`` commands of each line: shell comments dropped, split at ``&&``, ``;`` and pipes, a
    redirection's target dropped."""
    out = []
    for line in text.splitlines():
        segment: list[str] = []
        for w in [*shlex.split(line, comments=True), "&&"]:
            if w in (">", ">>", "|", "&&", ";", "2>"):
                if segment and segment[0] == "memsched":
                    out.append(segment[1:])
                segment = ["(redirect)"] if w in (">", ">>", "2>") else []
            elif segment != ["(redirect)"]:
                segment.append(w)
    return out


_CMD = typer.main.get_command(app)


def parse(args: list[str]) -> str:
    """Resolve ``memsched ARGS`` to its command and parse every option and argument (nothing runs)."""
    ctx = _CMD.make_context("memsched", list(args))
    cmd = _CMD
    while hasattr(cmd, "resolve_command"):
        # the group keeps the subcommand's own words back (click's protected args)
        rest = [*(getattr(ctx, "_protected_args", None) or []), *ctx.args]
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        assert cmd is not None and name is not None
        ctx = cmd.make_context(name, rest, parent=ctx)
    return str(cmd.name)


def test_markers_say_why() -> None:
    """Each block that does not run in full is marked, with a reason, and the docs have command blocks."""
    assert COMMANDS and PYTHON
    for b in ALL:
        assert b.lang in ("sh", "python", "toml", ""), f"{b.id}: unknown block language {b.lang!r}"


@pytest.mark.parametrize("block", COMMANDS, ids=lambda b: b.id)
def test_command_block(block: Block, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    if block.mode == "skip":
        return
    monkeypatch.chdir(tmp_path)  # files a command writes (--report, --trace) land here
    lines = command_lines(block.text)
    assert lines or block.mode == "skip", f"{block.id}: no memsched command in the block"
    for args in lines:
        text = " ".join(args)
        assert parse(args), text
        if block.mode == "run" or any(("memsched " + text).startswith(p) for p in block.run_prefixes):
            assert main(args) == 0, f"{block.id}: memsched {text}: {capsys.readouterr().err}"
            capsys.readouterr()


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.id)
def test_python_block(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    if block.mode == "skip":
        return
    tree = ast.parse(block.text, filename=block.id)
    if block.mode == "run":
        exec(compile(tree, block.id, "exec"), {})
    else:  # the imports must exist
        imports = ast.Module([n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)], [])
        exec(compile(imports, block.id, "exec"), {})
    capsys.readouterr()


@pytest.mark.parametrize("block", TOML, ids=lambda b: b.id)
def test_toml_block(block: Block, tmp_path: Path) -> None:
    """A documented TOML file loads with the loader it documents."""
    doc = tomllib.loads(block.text)
    if block.mode != "run":  # parse (or skip): valid TOML, but it names files of the reader's own
        return
    f = tmp_path / f"{doc.get('name', 'x')}.toml"
    f.write_text(block.text)
    if "sockets" in doc:
        from memsched.topology import load_topology

        assert load_topology(str(f)).name == doc["name"]
    elif "service" in doc:
        from memsched.workloads.pressure import load_scenario

        assert load_scenario(str(f)).name == doc["name"]
    elif "workloads" in doc and "policies" in doc:
        from memsched.sweep.spec import load_spec

        assert load_spec(f).name == doc["name"]
    else:
        pytest.fail(f"{block.id}: a TOML block of unknown kind")

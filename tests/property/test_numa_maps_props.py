"""numa_maps lines written as show_numa_map() writes them parse back to the same fields (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from memsched.live.procfs import parse_numa_maps

POLICIES = st.sampled_from(
    ["default", "prefer:1", "bind:0-3", "bind=static:0-1", "interleave:0,2", "local", "prefer (many):0-1",
     "weighted interleave:0-3", "interleave=relative:1-2"]
)  # fmt: skip
PATHS = st.from_regex(r"/[a-z0-9_./\\]{1,20}", fullmatch=True)


@st.composite
def vma_lines(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    start = draw(st.integers(0x1000, 0x7FFFFFFFF000)) & ~0xFFF
    policy = draw(POLICIES)
    kind = draw(st.sampled_from(["file", "heap", "stack", "anon"]))
    path = draw(PATHS) if kind == "file" else None
    huge = draw(st.booleans())
    # Up to 2^33 pages per node: four nodes of 2 MiB pages stay within a 57-bit address space, as a real VMA does.
    nodes = draw(st.dictionaries(st.integers(0, 63), st.integers(1, 1 << 33), max_size=4))
    anon = draw(st.integers(0, 1 << 30))
    parts = [f"{start:x}", policy]
    if path is not None:
        parts.append(f"file={path}")
    elif kind in ("heap", "stack"):
        parts.append(kind)
    if huge:
        parts.append("huge")
    page_kb = 2048 if huge else 4
    if nodes:  # show_numa_map prints the counters only for a VMA with pages
        if anon:
            parts.append(f"anon={anon}")
        parts.append("mapmax=2")
        parts += [f"N{n}={c}" for n, c in sorted(nodes.items())]
        parts.append(f"kernelpagesize_kB={page_kb}")
    expect = {
        "start": start,
        "policy": policy,
        "file": path,
        "heap": kind == "heap",
        "stack": kind == "stack",
        "huge": huge,
        "nodes": nodes,
        "anon": anon if nodes else 0,
        "bytes": {n: c * page_kb * 1024 for n, c in nodes.items()},
    }
    return " ".join(parts), expect


@settings(max_examples=200, deadline=None)
@given(st.lists(vma_lines(), min_size=1, max_size=6))
def test_round_trip(lines: list[tuple[str, dict[str, object]]]) -> None:
    """Every field survives: address, policy (one or two words, with flags), path, flags, N counts, bytes."""
    vmas = parse_numa_maps("\n".join(text for text, _ in lines) + "\n")
    assert len(vmas) == len(lines)
    for vma, (_, e) in zip(vmas, lines, strict=True):
        assert (vma.start, vma.policy, vma.file) == (e["start"], e["policy"], e["file"])
        assert (vma.heap, vma.stack, vma.huge, vma.anon) == (e["heap"], e["stack"], e["huge"], e["anon"])
        assert dict(vma.node_pages) == e["nodes"] and vma.node_bytes() == e["bytes"]

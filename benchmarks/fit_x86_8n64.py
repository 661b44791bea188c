"""Fit the hardware figures of the ``x86-8n64`` preset to the 8-node box's no-balancing rows.

    python benchmarks/fit_x86_8n64.py [--iterations N] [--start NAME=VALUE ...] [--routing fixed|spread]

Only the vanilla, HARD_BIND and INVERSE_BIND times of the four autonuma-benchmark workloads (Srikar Dronamraju,
linux-mm, 10 Dec 2012) are used: no balancing policy runs here, and no policy's result is read. The fitted
figures are the per-node controller, the link capacity inside a chassis and across chassis, the machine-wide
coherence resource (capacity and the extra cost of a remote byte per hop), and the latency of a hop. A core's
own figures are not fitted: ``core_mlp_bytes`` (10 line-fill buffers x 64 B) and ``latency_local_ns`` are
those of the Westmere-EX class (E7-48xx/88xx, the westmere-ex-4n48 preset), because a fit of them to whole-run
times drives them to values no core has. The objective is the largest deviation (log ratio) over the nine
rows of numa01, numa01_THREAD_ALLOC and numa02, with the RMS as a tie-break; a Nelder-Mead simplex in log
space searches it. numa02_SMT is left out of the objective: its posted rows (32 threads bound 3.8x slower
than 64, INVERSE_BIND faster than vanilla) cannot be met by a model where a thread's rate depends only on
where it runs and where its memory is, together with the other nine; its rows are still printed.
The best figures are printed as TOML lines for the preset file; the preset itself is edited by hand (so a change
to it is a reviewed change). ``--routing`` fits under another routing discipline than the preset's
(``memsched.topology.routing``). The search starts from the preset's figures, or from ``--start`` values (a
simplex on a max-deviation objective stops in local optima); the figures stay inside ``BOUNDS``. Every row runs
in this one process (about 0.2 s each); numa02_SMT's rows run once, for the final printout.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np

from memsched.topology.routing import ROUTING_MODES
from memsched.workloads.runner import run_one
from memsched.workloads.runspec import RunSpec

#: Srikar Dronamraju, linux-mm, 10 Dec 2012: 3.7-rc-era kernel without balancing, seconds.
PUBLISHED = {
    "numa01": (1555.24, 993.30, 3634.86),
    "numa01_THREAD_ALLOC": (1121.17, 792.73, 1988.95),
    "numa02": (147.04, 26.94, 349.10),
    "numa02_SMT": (386.43, 101.98, 325.26),
}
PARAMS = ("controller_gibps", "link_gibps", "cross_gibps", "snoop_gibps", "snoop_hop_cost", "latency_hop_ns")
#: A Westmere-EX core (the westmere-ex-4n48 preset): 10 line-fill buffers x 64 B, 135 ns to local memory.
FIXED: dict[str, object] = {"core_mlp_bytes": 640.0, "latency_local_ns": 135.0}
#: Rows in the objective (numa02_SMT's are printed, not fitted: see the module docstring).
FITTED = ("numa01", "numa01_THREAD_ALLOC", "numa02")
#: Where the search may go, per figure of PARAMS: what a 2010-2012 x86 box can have. Without bounds the simplex
#: wanders into machines no one built (a 600 GiB/s controller with 0.02 ns hops) to shave a row. Upper link
#: bound: one QPI link at 6.4 GT/s, 2 B per transfer, 11.9 GiB/s per direction.
BOUNDS = ((4.0, 40.0), (0.5, 11.9), (0.1, 11.9), (10.0, 400.0), (0.01, 10.0), (20.0, 300.0))
_LO, _HI = np.log([b[0] for b in BOUNDS]), np.log([b[1] for b in BOUNDS])


def preset() -> dict[str, object]:
    raw = resources.files("memsched.data").joinpath("topologies", "x86-8n64.toml").read_text()
    return tomllib.loads(raw)


def start_point(base: dict[str, object], overrides: dict[str, float]) -> np.ndarray:
    links = base["links"]
    assert isinstance(links, list)
    cross = next(float(link[2]) for link in links if len(link) == 3)
    values = [base["controller_gibps"], base["link_gibps"], cross, base["snoop_gibps"], base["snoop_hop_cost"],
              base["latency_hop_ns"]]
    start = [overrides.get(name, float(v)) for name, v in zip(PARAMS, values, strict=True)]  # type: ignore[arg-type]
    return clip(np.log(np.array(start)))


def clip(x: np.ndarray) -> np.ndarray:
    """``x`` (log figures) moved inside BOUNDS."""
    return np.minimum(np.maximum(x, _LO), _HI)


def start_override(text: str) -> tuple[str, float]:
    """``--start NAME=VALUE`` (argparse type)."""
    name, _, value = text.partition("=")
    if name not in PARAMS:
        raise argparse.ArgumentTypeError(f"{name!r} is not a fitted figure ({', '.join(PARAMS)})")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None


def toml_text(base: dict[str, object], x: np.ndarray) -> str:
    v: dict[str, object] = dict(zip(PARAMS, np.exp(x), strict=True)) | FIXED
    links = [link[:2] + ([round(v["cross_gibps"], 3)] if len(link) == 3 else []) for link in base["links"]]  # type: ignore[union-attr,index]
    lines = []
    for key, value in base.items():
        out = value
        if key == "links":
            out = links
        elif key == "routing":
            out = v.get("routing", value)
        elif key in v:
            out = round(float(v[key]), 3)  # type: ignore[arg-type]
        lines.append(f"{key} = {_toml(out)}")
    if "routing" not in base and "routing" in v:
        lines.append(f"routing = {_toml(v['routing'])}")
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(x) for x in value) + "]"
    return str(value)


def rows(path: Path, workloads: tuple[str, ...] = tuple(PUBLISHED)) -> list[tuple[str, float, float]]:
    out = []
    for wl in workloads:
        pubs = PUBLISHED[wl]
        for suffix, pub in zip(("", "_HARD_BIND", "_INVERSE_BIND"), pubs, strict=True):
            sim = float(run_one(RunSpec(wl + suffix, str(path), "none", 0))["elapsed_s"])
            out.append((wl + suffix, pub, sim))
    return out


def objective(
    base: dict[str, object], x: np.ndarray, folder: Path, workloads: tuple[str, ...] = FITTED
) -> tuple[float, list[tuple[str, float, float]]]:
    path = folder / "fit.toml"
    path.write_text(toml_text(base, clip(x)))
    got = rows(path, workloads)
    logs = np.array([math.log(sim / pub) for name, pub, sim in got if name.startswith(FITTED) and "SMT" not in name])
    return float(np.abs(logs).max() + 0.1 * np.sqrt((logs**2).mean())), got


def nelder_mead(f, x0: np.ndarray, iterations: int, step: float = 0.25):  # type: ignore[no-untyped-def]
    n = x0.shape[0]
    simplex = [x0] + [x0 + step * np.eye(n)[i] for i in range(n)]
    values = [f(x) for x in simplex]
    for _ in range(iterations):
        order = np.argsort(values)
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        centroid = np.mean(simplex[:-1], axis=0)
        reflected = centroid + (centroid - simplex[-1])
        fr = f(reflected)
        if fr < values[0]:
            expanded = centroid + 2 * (centroid - simplex[-1])
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = centroid + 0.5 * (simplex[-1] - centroid)
            fc = f(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                simplex = [simplex[0]] + [simplex[0] + 0.5 * (s - simplex[0]) for s in simplex[1:]]
                values = [values[0]] + [f(s) for s in simplex[1:]]
    best = int(np.argmin(values))
    return simplex[best], values[best]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--start", type=start_override, action="append", default=[], metavar="NAME=VALUE",
                    help="start this figure here instead of at the preset's value (repeatable)")
    ap.add_argument("--routing", choices=ROUTING_MODES, help="routing discipline to fit under (default: the preset's)")
    args = ap.parse_args()
    base = preset()
    if args.routing:
        FIXED["routing"] = args.routing
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        x0 = start_point(base, dict(args.start))
        best_x, _ = nelder_mead(lambda x: objective(base, x, folder)[0], x0, args.iterations)
        best_x = clip(best_x)
        score, got = objective(base, best_x, folder, tuple(PUBLISHED))
    print(f"# objective {score:.4f}")
    for name, pub, sim in got:
        print(f"# {name:28s} published {pub:8.1f} simulated {sim:8.1f} {100 * (sim / pub - 1):+6.1f} %")
    for key, value in (dict(zip(PARAMS, np.exp(best_x), strict=True)) | FIXED).items():
        print(f"{key} = {_toml(round(value, 3) if isinstance(value, float) else value)}")


if __name__ == "__main__":
    main()

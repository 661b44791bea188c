"""Many simulated runs: sweep specs, their cells, where they run, and tuning (``docs/sweeps.md``).

* ``spec.py`` — the TOML sweep spec, checked field by field, expanded into cells (``values.py``: lists and
  ranges; ``families.py``: generated topologies; ``plan.py``: one cell constructor and its key);
* ``cell.py`` — :class:`~memsched.sweep.cell.Cell` and :func:`~memsched.sweep.cell.run_cell`, the one cell
  function every executor runs (a thin wrapper of ``workloads.runner.run_one``);
* ``executors.py`` — the local process pool and the Ray executor;
* ``run.py`` — the loop that runs the missing cells and commits each result to the results database
  (``memsched.results``) as it arrives;
* ``estimate.py`` — the wall-time estimate of ``memsched sweep --dry-run``;
* ``tune.py`` — ``memsched tune``: Optuna over a policy's knobs, trials run as cells.
"""

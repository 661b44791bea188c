"""Acting on pressure in the simulator: scenarios where user-space OOM killers and shedding policies are scored
side by side (``memsched pressure act-sim``). See ``scenario.py`` for the TOML keys and ``run.py`` for the
scores."""

from memsched.workloads.act.run import ActRun, run_policy
from memsched.workloads.act.scenario import ActScenario, list_act_scenarios, load_act_scenario

__all__ = ["ActRun", "ActScenario", "list_act_scenarios", "load_act_scenario", "run_policy"]

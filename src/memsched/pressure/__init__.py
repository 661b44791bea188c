"""Memory-pressure notification logic shared by the simulated and the live kernel (pure layer).

- :mod:`memsched.pressure.index` — the reclaimer inefficiency index and level decision, flavours
  ``rfc2012`` and ``mainline`` (and ``mainline-3.10``) with their constants as data;
- :mod:`memsched.pressure.accounting` — window accumulation, the work-item snapshot, memcg event
  propagation (default / hierarchy / local) and the registration strings;
- :mod:`memsched.pressure.fd` — :class:`VmpressureFile`, the ``vmpressure_fd()`` file over a real descriptor;
- :mod:`memsched.pressure.psi` — PSI averages and trigger windows.
"""

from memsched.pressure.accounting import (
    Listener,
    MainlineVmpressure,
    RfcVmpressure,
    WindowSample,
    parse_event_control,
    parse_pressure_level_args,
    propagate,
)
from memsched.pressure.fd import FileClosedError, SourceGoneError, VmpressureFile, WatcherList
from memsched.pressure.index import (
    DEF_PRIORITY,
    FLAVOURS,
    SWAP_CLUSTER_MAX,
    MainlineVmpressureConfig,
    Rfc2012VmpressureConfig,
    get_flavour,
    mainline_index,
    mainline_level,
    rfc2012_index,
    rfc2012_level,
)

__all__ = [
    "DEF_PRIORITY",
    "FLAVOURS",
    "SWAP_CLUSTER_MAX",
    "FileClosedError",
    "Listener",
    "MainlineVmpressure",
    "MainlineVmpressureConfig",
    "Rfc2012VmpressureConfig",
    "RfcVmpressure",
    "SourceGoneError",
    "VmpressureFile",
    "WatcherList",
    "WindowSample",
    "get_flavour",
    "mainline_index",
    "mainline_level",
    "parse_event_control",
    "parse_pressure_level_args",
    "propagate",
    "rfc2012_index",
    "rfc2012_level",
]

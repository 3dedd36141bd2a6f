"""One grid cell's process: `python -m launch.cell_process PARENT_PID CPUS RUN_DIR`.

Sets up the process, then runs the job's entry point (`harness.run`) on the cell's
prepared folder:
- it dies with the launcher (Linux parent-death signal), so a SIGKILLed launcher leaves no
  orphan writing into the cell's folder beside the relaunched one;
- CPUS ('all' or '0,1') pins it to its share of the cores before JAX starts; XLA sizes its
  CPU thread pool from the affinity mask.
Done here rather than in a preexec_fn: the launcher has JAX's threads, and running Python
between fork and exec in a multithreaded process can deadlock.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    parent, cpus, job_args = int(argv[0]), argv[1], argv[2:]
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the launcher's Ctrl-C handling still applies
        pass
    if os.getppid() != parent:  # the launcher died before the signal was armed
        return 1
    if cpus != "all" and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    from harness.run import main as run_main

    return run_main(job_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

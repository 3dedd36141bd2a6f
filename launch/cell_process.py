"""How the local executor starts a job: `python -m launch.cell_process PARENT_PID CPUS -- COMMAND...`.

Arms this process, then replaces it (exec) with COMMAND, the job's entry point
`python -m harness.run RUN_DIR... --no-progress`, so the job runs exactly as under any
other executor:
- it dies with the launcher (Linux parent-death signal, kept across exec), so a
  SIGKILLed launcher leaves no orphan writing into the cell's folder beside the
  relaunched one;
- CPUS ('all' or '0,1') pins it to its share of the cores before JAX starts (the mask is
  kept across exec); XLA sizes its CPU thread pool from the affinity mask.
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
    parent, cpus, rest = int(argv[0]), argv[1], argv[2:]
    command = rest[1:] if rest[:1] == ["--"] else rest
    if not command:
        print("launch.cell_process: no command to run after PARENT_PID CPUS --", file=sys.stderr)
        return 2
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the launcher's Ctrl-C handling still applies
        pass
    if os.getppid() != parent:  # the launcher died before the signal was armed
        return 1
    if cpus != "all" and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(command[0], command)  # does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

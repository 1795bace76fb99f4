"""Start-up (issue 18 item 7): CPU time of ``ukernel run hello`` against ``python -c "import trio"``.

Each pair is measured back to back (interleaved), as children's user+system CPU time, so a
noisy machine moves both; the ratio of the minima and of the medians is printed.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys

ROUNDS = 7


def cpu(command: list[str]) -> float:
    """User + system CPU seconds that one run of ``command`` took."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ukernel, trio = [], []
    for _ in range(ROUNDS):
        trio.append(cpu([sys.executable, "-c", "import trio"]))
        ukernel.append(cpu([sys.executable, "-m", "ukernel", "run", "hello"]))
    print(
        f"ukernel run hello / python -c 'import trio' (CPU time, {ROUNDS} interleaved): "
        f"min {min(ukernel) / min(trio):.2f}x, median {statistics.median(ukernel) / statistics.median(trio):.2f}x"
    )


if __name__ == "__main__":
    main()

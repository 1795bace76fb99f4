"""ukernel: Linux's fork path rebuilt as messages between services, on trio.

r = ukernel.run("userland/nginx.py", argv=["nginx", "4"])
r.exit_code, r.status, r.stdout, r.trace

async with ukernel.boot() as kernel:
    status = await kernel.run("/bin/hello")

The public face only: the code is in api.py (run, boot), kernel/ (the kernel
proper), user/ (how a program runs), ipc/ (how a message moves), trace/
(events and views), explore/ (every interleaving); the services are in the top-level ``services`` package.
"""

from . import abi
from .api import Result, RunInterrupted, boot, run, run_async
from .explore import Exploration, explore

__version__ = "0.1.0"

__all__ = ["Exploration", "Result", "RunInterrupted", "__version__", "abi", "boot", "explore", "run", "run_async"]

"""sched: run queues, CPUs and the virtual clock (service.py), behind scheduling classes (classes.py).

May import ukernel.abi, ukernel.ipc and ukernel.plugin only, like every service.
"""

from .service import SchedService

__all__ = ["SchedService"]

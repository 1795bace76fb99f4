"""A typical bug (tests/test_lab_fork_trace_cow.py): the reference fork.py, except that
unwind reads each handle from the child's field, and sched_fork has none."""

from pathlib import Path

import ukernel
from ukernel.plugin import load_file

reference = load_file(Path(ukernel.__file__).parent / "labs" / "fork" / "solution" / "fork.py")


class Walk(reference.Walk):
    async def unwind(self) -> None:
        for step in reversed(self.done):
            if step.service == "kernel" or step.undo is None:
                continue
            args = {step.param: getattr(self.child, step.attr)}  # BUG: sched_fork has no attr
            await self.k.call(step.service, step.undo, args, self.meta(f"undo {step.name}"))
        self.done.clear()

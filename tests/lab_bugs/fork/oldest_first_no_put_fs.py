"""Two typical bugs (tests/test_lab_fork_trace_cow.py): the reference fork.py, except that
copy_fs has no undo (its fs_struct leaks) and the unwind gives back oldest first."""

from dataclasses import replace
from pathlib import Path

import ukernel
from ukernel.kernel.fork import COPY_STEPS
from ukernel.plugin import load_file

reference = load_file(Path(ukernel.__file__).parent / "labs" / "fork" / "solution" / "fork.py")
UNDO = {name: op for name, op in reference.UNDO.items() if name != "copy_fs"}


class Walk(reference.Walk):
    table = tuple(replace(step, undo=UNDO.get(step.name)) for step in COPY_STEPS)

    async def unwind(self) -> None:
        for step in self.done:  # BUG: oldest first
            if step.service == "kernel" or step.undo is None:
                continue
            await self.k.call(step.service, step.undo, {step.param: self.handle(step)}, self.meta(f"undo {step.name}"))
        self.done.clear()

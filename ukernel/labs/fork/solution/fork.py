"""fork lab: copy_process's unwind -- the undo column and the walker (kernel/fork.c).

copy_process is a table (COPY_STEPS in ukernel/kernel/fork.py): one row per
step, the service that does it and the op it gets. This file gives that table
your own undo column (UNDO) and walks it with your own ``run`` and ``unwind``.
``ukernel lab grade fork`` plugs ``Walk`` into every clone (Config.copy_process).
"""

from __future__ import annotations

from dataclasses import replace

import trio

from ukernel.kernel.fork import COPY_STEPS, CopyProcess

#: Step name -> the op that gives the step back when a later step fails: the call
#: under the step's bad_fork_cleanup_* label in kernel/fork.c. A step that is not
#: here has nothing to give back.
UNDO: dict[str, str] = {
    # BEGIN SOLUTION
    # STUB: # "step name": "undo op",  (handout step 1)
    "sched_fork": "sched_cancel_fork",
    "copy_semundo": "exit_sem",
    "copy_files": "put_files",
    "copy_fs": "put_fs",
    "copy_sighand": "put_sighand",
    "copy_signal": "put_signal",
    "copy_mm": "mmput",
    "copy_namespaces": "put_nsproxy",
    "alloc_pid": "free_pid",
    # END SOLUTION
}


class Walk(CopyProcess):
    """copy_process with your undo column, walked by your run and unwind."""

    table = tuple(replace(step, undo=UNDO.get(step.name)) for step in COPY_STEPS)

    async def run(self) -> None:
        """Do the rows in table order; when one fails, give back what was done and fail the same way."""
        # BEGIN SOLUTION
        # STUB: raise NotImplementedError("fork.py: Walk.run: your walker here (handout step 2)")
        try:
            for step in self.table:
                await self.do_step(step)  # a row that is done goes on self.done
        except trio.Cancelled:
            raise  # the run is ending: the services go too, so nobody waits for an undo
        except BaseException:
            await self.unwind()
            raise
        # END SOLUTION

    async def unwind(self) -> None:
        """Send the undo op of every row in self.done, newest first, and forget them."""
        # BEGIN SOLUTION
        # STUB: raise NotImplementedError("fork.py: Walk.unwind: your unwind here (handout step 3)")
        for step in reversed(self.done):
            if step.service == "kernel" or step.undo is None:
                continue  # the kernel's own rows give back nothing a service counts
            args = {step.param: self.handle(step)}
            await self.k.call(step.service, step.undo, args, self.meta(f"undo {step.name}"))
        self.done.clear()
        # END SOLUTION

"""A copy_process walker with a bug: it raises before any step (the fork lab's typical mistake)."""

from ukernel.kernel.fork import CopyProcess


class Walk(CopyProcess):
    async def run(self) -> None:
        raise RuntimeError("the walker lost its way")  # BUG

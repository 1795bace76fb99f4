"""How a Python program runs on the kernel: libc (``sys``), binfmt (loading), process (replay), space (copies).

May import ukernel.abi and ukernel.kernel.task (current, TaskExit, ExecImage); it enters the
kernel only through ``Kernel.syscall``.
"""

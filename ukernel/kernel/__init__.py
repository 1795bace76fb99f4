"""The kernel proper: one module per Linux source file (fork.py is kernel/fork.c).

May import ukernel.abi, ukernel.ipc (to send messages), ukernel.trace and ukernel.user
(to start a task's Python code); never a service's module: services are reached by messages.
"""

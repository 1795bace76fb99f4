"""The six services: mm, vfs, pid, sched, signals, namespaces (one module each)."""

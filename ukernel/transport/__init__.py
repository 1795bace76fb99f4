"""How frames reach a service: memory channels in one process (local.py)."""

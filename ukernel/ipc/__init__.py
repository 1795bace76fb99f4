"""How a message moves: the MessagePack-RPC envelope, the Service base, the router, and transports.

May import ukernel.abi and ukernel.trace only: nothing here knows the kernel or any service.
local.py is one process; tcp.py (with tls.py), endpoint.py and node.py reach services in other processes.
"""

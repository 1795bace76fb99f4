"""vfs: tmpfs inodes, mounts per namespace, fs_struct, files_struct and open files, pipes, devices.

One service split by concern as Linux's fs/ is: vfs.py (the service), inode.py, namei.py (walks
and names), mount.py, pipe.py, proc.py (what /proc asks of the fd tables). May import ukernel.abi
and ukernel.ipc only.
"""

from .vfs import VfsService

__all__ = ["VfsService"]

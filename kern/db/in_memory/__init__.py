"""`kern.db.in_memory.InMemoryDb`: a store that lives as long as its process."""

from kern.db.in_memory.in_memory_db import InMemoryDb

__all__ = ["InMemoryDb"]

"""Durability: the group-commit journal (journal.py), its writer process
(writer_process.py), the SQLite store and its schema (store.py), archived segments
(archive.py, segments.py), the chain check every start runs (chaincheck.py) and recovery
from snapshot + journal (recovery.py)."""

"""Data sets: built-in, users' archives, tables and texts, streamed folders."""

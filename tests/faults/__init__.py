"""Fault-injection cases: the real service process, a real pty, real outputs (issue 9)."""

"""Tracking of the runtime's own resources (asyncio, uvloop, trio, threads)."""

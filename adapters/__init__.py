"""sansbeat.adapters: the drivers that carry out the machine's actions with real I/O.

The only part of sansbeat that reads a clock or touches a socket. Empty until the
wire codec and the sync, asyncio and trio drivers land.
"""

__all__: list[str] = []

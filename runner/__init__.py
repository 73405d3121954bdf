"""The asyncio workshop runner: runs the lesson's samples against their own seeded Postgres."""

__version__ = "0.1.0"

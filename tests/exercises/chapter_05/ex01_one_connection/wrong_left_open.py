# message: left its connection open
"""Notebook style, with top-level await: right answers, one connection, but it is never closed."""

import asyncpg

conn = await asyncpg.connect(  # noqa: F704 - the runner accepts top-level await, as a notebook does
    host="127.0.0.1",
    port=5432,
    user="postgres",
    password="password",
    database="products",
)
print(f"server version: {conn.get_server_version().major}")
print(f"brands: {await conn.fetchval('SELECT count(*) FROM brand')}")  # noqa: F704

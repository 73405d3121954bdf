# message: statement_timeout
"""The server is told to give up instead: statement_timeout, not asyncio.timeout."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
        server_settings={"statement_timeout": "500"},
    )
    try:
        print(await conn.fetchval("SELECT 'the report', pg_sleep(3)"))
    except asyncpg.QueryCanceledError:
        print("gave up")
    await conn.close()


asyncio.run(main())

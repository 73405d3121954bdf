"""A time limit for every query on a connection (command_timeout), and one for a single call (timeout=)."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
        command_timeout=0.5,  # seconds, for each query on this connection
    )
    try:
        await conn.execute("SELECT pg_sleep(10)")
    except TimeoutError:
        print("pg_sleep(10): TimeoutError after the connection's 0.5 s")

    # A call's own timeout replaces the connection's default for that call.
    await conn.execute("SELECT pg_sleep(0.8)", timeout=2)
    print("pg_sleep(0.8) with timeout=2: finished")

    try:
        await conn.fetchval("SELECT pg_sleep(0.8)")
    except TimeoutError:
        print("pg_sleep(0.8) without it: TimeoutError again")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

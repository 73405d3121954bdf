"""Exercise 9, a solution: asyncio.timeout around the query; asyncpg cancels it on the server."""

import asyncio
import time

import asyncpg

SLOW_REPORT = "SELECT 'the report', pg_sleep(3)"


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    started = time.perf_counter()
    try:
        async with asyncio.timeout(0.5):
            report = await conn.fetchval(SLOW_REPORT)
        print(f"{report} arrived after {time.perf_counter() - started:.1f} s")
    except TimeoutError:
        print(f"gave up after {time.perf_counter() - started:.1f} s")
    # The next query waits until the server has confirmed the cancellation.
    print("the connection still answers:", await conn.fetchval("SELECT 'yes'"))
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

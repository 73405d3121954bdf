"""Exercise 9: give up after half a second.

The report below takes three seconds on the server. Wait for it at most half a
second: then print that you gave up, and make sure the server stops working on
it too.
"""

import asyncio
import time

import asyncpg

# pg_sleep(3) stands in for a report that keeps the server busy for three seconds.
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
    report = await conn.fetchval(SLOW_REPORT)
    print(f"{report} arrived after {time.perf_counter() - started:.1f} s")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

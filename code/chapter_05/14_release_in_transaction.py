"""Give a connection back to the pool in the middle of a transaction: asyncpg rolls the transaction back."""

import asyncio
from typing import Any

import asyncpg

BRAND_EXISTS = "SELECT EXISTS (SELECT 1 FROM brand WHERE brand_id = 9999)"


def show_warning(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncpg reports the forgotten transaction to the event loop; print it instead of logging it."""
    print("  asyncpg warns:", context["message"])


async def main() -> None:
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(show_warning)
    try:
        await lend_twice()
    finally:
        loop.set_exception_handler(previous_handler)


async def lend_twice() -> None:
    async with asyncpg.create_pool(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
        min_size=1,
        max_size=1,  # one connection, so the second acquire gets the same one back
    ) as pool:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()  # started by hand, and never committed nor rolled back
            await conn.execute("INSERT INTO brand VALUES (9999, 'forgotten')")
            print("inside the transaction, brand 9999 exists:", await conn.fetchval(BRAND_EXISTS))
            print("leaving the acquire block with the transaction open")

        async with pool.acquire() as conn:
            print("the next borrower: in a transaction?", conn.is_in_transaction())
            print("the next borrower: brand 9999 exists?", await conn.fetchval(BRAND_EXISTS))

if __name__ == "__main__":
    asyncio.run(main())

"""`async with` gives back what it borrowed: a pool closes with its block, a connection goes back after acquire."""

import asyncio

import asyncpg


async def main() -> None:
    async with asyncpg.create_pool(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
        min_size=2,
        max_size=2,
    ) as pool:
        async with pool.acquire() as conn:
            print("inside acquire:", await conn.fetchval("SELECT count(*) FROM brand"), "brands")
            print("idle connections while we hold one:", pool.get_idle_size())
        print("idle connections after the block:", pool.get_idle_size())

        # The name `conn` still exists, but the connection went back to the pool.
        try:
            await conn.fetchval("SELECT 1")
        except asyncpg.InterfaceError as error:
            print(f"using it anyway: {type(error).__name__}: {error}")

        # A block that fails gives its connection back too.
        try:
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1 / 0")
        except asyncpg.DivisionByZeroError as error:
            print(f"a failing block: {type(error).__name__}: {error}")
        print("idle connections after the failure:", pool.get_idle_size())

    print("after the pool's block, the pool is closing:", pool.is_closing())

    # A single connection has no `async with`: close it in `finally`.
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    try:
        print("a lone connection:", await conn.fetchval("SELECT count(*) FROM product"), "products")
    finally:
        await conn.close()
    print("and it is closed:", conn.is_closed())


if __name__ == "__main__":
    asyncio.run(main())

"""Insert brand 9999 twice inside one transaction: the second insert fails and both are undone."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO brand VALUES (9999, 'brand_1')")
            await conn.execute("INSERT INTO brand VALUES (9999, 'brand_2')")
    except asyncpg.UniqueViolationError as error:
        print(f"{type(error).__name__}: {error}")
        print("the transaction was rolled back, taking the first insert with it")

    present = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM brand WHERE brand_id = 9999)")
    print(f"brand 9999 present after rollback: {present}")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

"""After an error inside a transaction, PostgreSQL refuses every statement until the end: a savepoint contains it."""

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
    # A temporary table: private to this connection, gone when it closes.
    await conn.execute("CREATE TEMPORARY TABLE favourite (brand_id int PRIMARY KEY)")

    print("catching the error inside the transaction:")
    async with conn.transaction():
        await conn.execute("INSERT INTO favourite VALUES (1)")
        try:
            await conn.execute("INSERT INTO favourite VALUES (1)")
        except asyncpg.UniqueViolationError:
            print("  duplicate brand 1 caught, carrying on")
        try:
            await conn.execute("INSERT INTO favourite VALUES (2)")
        except asyncpg.InFailedSQLTransactionError as error:
            print(f"  {type(error).__name__}: {error}")
    print("  rows kept:", await conn.fetch("SELECT brand_id FROM favourite ORDER BY 1"))

    print("with a savepoint (a transaction inside the transaction) around the risky insert:")
    await conn.execute("TRUNCATE favourite")  # start again from an empty table
    async with conn.transaction():
        await conn.execute("INSERT INTO favourite VALUES (1)")
        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO favourite VALUES (1)")
        except asyncpg.UniqueViolationError:
            print("  duplicate brand 1 caught; only the savepoint was rolled back")
        await conn.execute("INSERT INTO favourite VALUES (2)")
    print("  rows kept:", await conn.fetch("SELECT brand_id FROM favourite ORDER BY 1"))
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

"""A fixture exercise for the machinery's tests: insert a brand named 'Checked' with a parameter,
while two other queries run at the same time."""

import asyncio

import asyncpg


async def main() -> None:
    pool = await asyncpg.create_pool(
        host="127.0.0.1", port=5432, user="postgres", password="password", database="products", min_size=3, max_size=3
    )
    await asyncio.gather(
        pool.execute("INSERT INTO brand (brand_id, brand_name) SELECT 9001, $1::text FROM pg_sleep(0.2)", "Checked"),
        pool.fetchval("SELECT pg_sleep(0.2)"),
        pool.fetchval("SELECT pg_sleep(0.2)"),
    )
    print("done")
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())

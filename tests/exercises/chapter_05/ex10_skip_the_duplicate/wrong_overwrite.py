# message: was overwritten
"""ON CONFLICT DO UPDATE: no error, but the existing brand 7 takes the imported name."""

import asyncio

import asyncpg

NEW_BRANDS = [(601, "maple"), (602, "cedar"), (7, "bitter twin"), (603, "birch"), (604, "alder")]


async def main() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", password="password", database="products")
    async with conn.transaction():
        for brand_id, name in NEW_BRANDS:
            await conn.execute(
                "INSERT INTO brand VALUES ($1, $2) ON CONFLICT (brand_id) DO UPDATE SET brand_name = $2",
                brand_id,
                name,
            )
            print(f"added brand {brand_id}")
    await conn.close()


asyncio.run(main())

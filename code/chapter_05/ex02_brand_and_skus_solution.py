"""Exercise 2, a solution: a join for the brand's name, count(*) for the SKUs."""

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
    brand = await conn.fetchval(
        "SELECT b.brand_name FROM product AS p JOIN brand AS b ON b.brand_id = p.brand_id WHERE p.product_id = 100"
    )
    skus = await conn.fetchval("SELECT count(*) FROM sku WHERE product_id = 100")
    print(f"brand: {brand}")
    print(f"skus: {skus}")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

"""Exercise 2: which brand makes product 100, and how many SKUs does it have?

Print `brand: <the brand's name>` and `skus: <the number of SKUs of product 100>`,
letting the server do the counting.
"""

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
    product = await conn.fetchrow("SELECT product_name, brand_id FROM product WHERE product_id = 100")
    print(f"product 100: {product['product_name']}")
    print(f"brand id: {product['brand_id']}")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

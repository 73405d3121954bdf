"""Exercise 7: stop reading once you have what you need.

Print the first three products, in id order, whose name holds the word "rain".
Python decides which names match; stream the products with a cursor and stop
reading as soon as you have three.
"""

import asyncio

import asyncpg

WORD = "rain"


def holds_word(name: str) -> bool:
    return WORD in name.split()


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    products = await conn.fetch("SELECT product_id, product_name FROM product ORDER BY product_id")
    found = [product for product in products if holds_word(product["product_name"])][:3]
    for product in found:
        print(product["product_id"], product["product_name"])
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

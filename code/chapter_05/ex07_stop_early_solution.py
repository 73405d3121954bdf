"""Exercise 7, a solution: a cursor inside a transaction, left with break after the third match."""

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
    found = []
    async with conn.transaction():  # a cursor lives inside a transaction
        async for product in conn.cursor("SELECT product_id, product_name FROM product ORDER BY product_id"):
            if holds_word(product["product_name"]):
                found.append(product)
                if len(found) == 3:
                    break  # no more batches are fetched from here on
    for product in found:
        print(product["product_id"], product["product_name"])
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

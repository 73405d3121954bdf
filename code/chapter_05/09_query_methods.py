"""The five query methods side by side, each given its values as $1, $2 parameters."""

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
    # fetch: every row of the result, as a list of Records.
    sizes = await conn.fetch(
        "SELECT product_size_id, product_size_name FROM product_size WHERE product_size_id <= $1 ORDER BY 1",
        2,
    )
    print("fetch       ->", sizes)

    # fetchrow: the first row only, or None when there is none.
    brand = await conn.fetchrow("SELECT brand_id, brand_name FROM brand WHERE brand_id = $1", 7)
    print("fetchrow    ->", brand)
    print("              a Record reads like a tuple and like a dict:", brand[1], brand["brand_name"])

    # fetchval: one value (first column of the first row).
    skus = await conn.fetchval("SELECT count(*) FROM sku WHERE product_id = $1", 100)
    print("fetchval    ->", skus)

    # execute: run a statement, get back the status the server reported.
    status = await conn.execute("CREATE TEMPORARY TABLE basket (sku_id int PRIMARY KEY, quantity int NOT NULL)")
    print("execute     ->", repr(status))

    # executemany: one statement, run once per tuple of arguments.
    done = await conn.executemany("INSERT INTO basket VALUES ($1, $2)", [(753, 1), (915, 2), (1183, 5)])
    items = await conn.fetchval("SELECT sum(quantity) FROM basket")
    print("executemany ->", done, f"(the basket now holds {items} items)")

    # The temporary table belongs to this connection and disappears with it.
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

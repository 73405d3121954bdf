"""Create the `products` database and fill it with the chapter's catalogue.

Run it from the repository root (it is safe to run again; it starts afresh):

    python -m code.setup_products_database

The catalogue is generated from a fixed seed, so every run, and every learner,
gets exactly the same rows: 100 brands, 1,000 products, 3 sizes, 2 colors and
100,000 SKUs.
"""

import asyncio
import random
import time
from pathlib import Path

import asyncpg

HERE = Path(__file__).resolve().parent
WORDS_PATH = HERE / "common_words.txt"

SEED_INPUTS: tuple[Path, ...] = (Path(__file__).resolve(), WORDS_PATH)
"""Files the catalogue depends on: when either changes, a cached copy is stale."""

RANDOM_SEED = 5
BRAND_COUNT = 100
PRODUCT_COUNT = 1_000
WORDS_PER_PRODUCT_NAME = 10
SKU_COUNT = 100_000
SIZES = ("Small", "Medium", "Large")
COLORS = ("Blue", "Black")
TABLES = ("brand", "product", "product_color", "product_size", "sku")

CREATE_TABLES = """
CREATE TABLE brand (
    brand_id SERIAL PRIMARY KEY,
    brand_name TEXT NOT NULL
);
CREATE TABLE product (
    product_id SERIAL PRIMARY KEY,
    product_name TEXT NOT NULL,
    brand_id INT NOT NULL
);
CREATE TABLE product_color (
    product_color_id SERIAL PRIMARY KEY,
    product_color_name TEXT NOT NULL
);
CREATE TABLE product_size (
    product_size_id SERIAL PRIMARY KEY,
    product_size_name TEXT NOT NULL
);
CREATE TABLE sku (
    sku_id SERIAL PRIMARY KEY,
    product_id INT NOT NULL,
    product_size_id INT NOT NULL,
    product_color_id INT NOT NULL
);
"""

ADD_FOREIGN_KEYS = """
ALTER TABLE product
    ADD FOREIGN KEY (brand_id) REFERENCES brand (brand_id);
ALTER TABLE sku
    ADD FOREIGN KEY (product_id) REFERENCES product (product_id),
    ADD FOREIGN KEY (product_size_id) REFERENCES product_size (product_size_id),
    ADD FOREIGN KEY (product_color_id) REFERENCES product_color (product_color_id);
"""


def load_words() -> list[str]:
    """Read the word list that brand and product names are built from."""
    return WORDS_PATH.read_text(encoding="utf-8").split()


async def create_schema(conn: asyncpg.Connection) -> None:
    """Drop the five tables if present, then create them, so a rerun starts clean.

    The foreign keys come later, in `add_foreign_keys`, once the rows are in.
    """
    await conn.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)} CASCADE")
    await conn.execute(CREATE_TABLES)


async def insert_data(conn: asyncpg.Connection) -> None:
    """Fill the tables with deterministic rows, using COPY because it is fast.

    The serial ids are left to Postgres, so they run 1, 2, 3... in insertion
    order and the sequences stay right for any later INSERT.
    """
    rng = random.Random(RANDOM_SEED)
    words = load_words()

    brands = [(name,) for name in rng.sample(words, BRAND_COUNT)]
    products = [
        (" ".join(rng.choices(words, k=WORDS_PER_PRODUCT_NAME)), rng.randint(1, BRAND_COUNT))
        for _ in range(PRODUCT_COUNT)
    ]
    skus = [
        (
            rng.randint(1, PRODUCT_COUNT),
            rng.randint(1, len(SIZES)),
            rng.randint(1, len(COLORS)),
        )
        for _ in range(SKU_COUNT)
    ]

    await conn.copy_records_to_table("brand", records=brands, columns=["brand_name"])
    await conn.copy_records_to_table("product", records=products, columns=["product_name", "brand_id"])
    await conn.copy_records_to_table("product_size", records=[(size,) for size in SIZES], columns=["product_size_name"])
    await conn.copy_records_to_table(
        "product_color", records=[(color,) for color in COLORS], columns=["product_color_name"]
    )
    await conn.copy_records_to_table(
        "sku",
        records=skus,
        columns=["product_id", "product_size_id", "product_color_id"],
    )


async def add_foreign_keys(conn: asyncpg.Connection) -> None:
    """Link the tables as the ER model shows, checking every row in one pass.

    Declared before the load, each of the 100,000 SKUs would be checked against
    its three parent rows one at a time (about a second); added afterwards,
    Postgres validates them all with a single join (a few milliseconds).
    """
    await conn.execute(ADD_FOREIGN_KEYS)


async def seed(conn: asyncpg.Connection) -> None:
    """Build the catalogue in the connected database, all or nothing."""
    async with conn.transaction():
        await create_schema(conn)
        await insert_data(conn)
        await add_foreign_keys(conn)
        # Fresh statistics now, rather than whenever autovacuum gets round to it,
        # so query plans (and timings) are the same from the first query on.
        await conn.execute(f"ANALYZE {', '.join(TABLES)}")


async def main() -> None:
    """Create `products` on the local server if needed, then (re)build its catalogue."""
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="postgres",
    )
    exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'products'")
    if not exists:
        await conn.execute("CREATE DATABASE products")
        print("Created database products")
    await conn.close()

    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="products",
    )
    start = time.perf_counter()
    await seed(conn)
    print(f"Seeded products in {time.perf_counter() - start:.2f} second(s)")
    for table in TABLES:
        count = await conn.fetchval(f"SELECT count(*) FROM {table}")
        print(f"{table:<14} {count:>7,} rows")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

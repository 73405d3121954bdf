"""Check: which brand makes product 100, and how many SKUs does it have?"""

from runner.checking import NotSolved, Result


async def check(result: Result) -> str:
    if result.exception is not None:
        raise NotSolved(f"Your code stopped with {result.exception}.")
    product = await result.db.fetchrow("SELECT brand_id, product_name FROM product WHERE product_id = 100")
    brand = await result.db.fetchval("SELECT brand_name FROM brand WHERE brand_id = $1", product["brand_id"])
    skus = await result.db.fetchval("SELECT count(*) FROM sku WHERE product_id = 100")
    total = await result.db.fetchval("SELECT count(*) FROM sku")

    printed_brand = result.printed("brand")
    if printed_brand is None:
        raise NotSolved(
            "Your output has no line `brand: ...`. Product 100 only holds its brand's id (brand_id); "
            "its name is in the brand table: join the two tables on brand_id, or ask a second query."
        )
    if printed_brand == str(product["brand_id"]):
        raise NotSolved(
            f"Your output says `brand: {printed_brand}`: that is the brand's id. Print its name, the "
            "brand_name column of the brand table (JOIN brand ON brand.brand_id = product.brand_id)."
        )
    if printed_brand != brand:
        raise NotSolved(
            f"Your output says `brand: {printed_brand}`, which is not the name of the brand of product 100 "
            f"(brand {product['brand_id']}). Look its brand_name up in the brand table."
        )

    printed_skus = result.printed("skus")
    if printed_skus is None:
        raise NotSolved("Your output has no line `skus: ...`: count the rows of sku whose product_id is 100.")
    if printed_skus == str(total):
        raise NotSolved(
            f"Your output says `skus: {printed_skus}`: that is every SKU in the table. "
            "Count only those of product 100: add WHERE product_id = 100."
        )
    if printed_skus != str(skus):
        raise NotSolved(
            f"Your output says `skus: {printed_skus}`, but product 100 has another number of SKUs: "
            "count the rows of sku WHERE product_id = 100."
        )

    shipped = [q for q in result.queries_matching(r"\bsku\b") if q.error is None and q.rows > 1]
    if shipped:
        raise NotSolved(
            f"The right numbers, but a query on sku sent {shipped[0].rows} rows back to be counted in Python. "
            "Let the server count: SELECT count(*) FROM sku WHERE product_id = 100 answers with a single row."
        )
    return f"Solved: product 100 is made by {brand} and has {skus} SKUs, counted by the server."

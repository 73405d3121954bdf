"""Check: skip the duplicate, keep the rest."""

from runner.checking import NotSolved, Result

NEW = (601, 602, 603, 604)
DUPLICATE = 7
ABORTED = "25P02"  # in_failed_sql_transaction


async def check(result: Result) -> str:
    if result.exception is not None:
        hint = ""
        if result.exception.type == "InFailedSQLTransactionError":
            hint = (
                " The failed insert aborted the transaction it ran in. Put the try/except around the nested "
                "`async with conn.transaction():`, so that the exception leaves the savepoint's block and only "
                "the savepoint is rolled back."
            )
        raise NotSolved(f"Your code stopped with {result.exception}.{hint}")

    rows = await result.db.fetch("SELECT brand_id, brand_name FROM brand WHERE brand_id = ANY ($1)", [*NEW, DUPLICATE])
    names = {row["brand_id"]: row["brand_name"] for row in rows}
    missing = [brand for brand in NEW if brand not in names]
    if missing:
        refused = [q for q in result.queries if q.error == ABORTED]
        if refused:
            raise NotSolved(
                f"Brands {', '.join(map(str, missing))} are not in the table. After the duplicate failed, the "
                f"transaction was aborted: the server refused {len(refused)} later statement(s) "
                "(InFailedSQLTransactionError) and the COMMIT at the end rolled everything back. Give each insert "
                "a savepoint: a nested `async with conn.transaction():` around it, inside the try."
            )
        raise NotSolved(
            f"Brands {', '.join(map(str, missing))} are not in the table after the run: keep every new brand "
            f"but the duplicate, {DUPLICATE}."
        )
    if names.get(DUPLICATE) == "bitter twin":
        raise NotSolved(
            f"Brand {DUPLICATE} was overwritten with the imported name: skip the duplicate and leave the brand "
            "that was already there as it was."
        )
    added = [q for q in result.queries_matching(r"insert\s+into\s+brand\b") if q.error is None]
    alone = [q for q in added if q.transaction_after == "idle"]
    if alone:
        raise NotSolved(
            f"{len(alone)} insert(s) ran outside a transaction, each committed on its own. Keep the import in one "
            "`async with conn.transaction():` (so that an unexpected error would undo all of it), with a "
            "nested one, a savepoint, around each insert."
        )
    if f"skipped brand {DUPLICATE}" not in result.stdout:
        raise NotSolved(
            f"The right brands were kept, but the output does not say that brand {DUPLICATE} was skipped: "
            f"print `skipped brand {DUPLICATE}: ...` when its insert fails."
        )
    return f"Solved: brands {', '.join(map(str, NEW))} kept in one transaction, the duplicate {DUPLICATE} skipped."

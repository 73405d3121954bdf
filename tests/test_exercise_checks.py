"""The checks of the exercises, judged on run records built by hand, against the real products database.

Fast: no sandbox and no runner, only the check functions of `code/chapter_05/exNN_*_check.py`
given a `Result` as the runner would build it (queries as the server saw them) and a
connection to a real seeded PostgreSQL (`python -m runner db`). Each test holds its
connection in a transaction that is rolled back, so what a test writes to the database
for a scenario (a brand left behind) is gone afterwards. tests/test_exercises.py runs
the same checks through the real runner.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import pytest

from bench.processes import free_port
from runner.checking import NotSolved, Query, RaisedException, Result

from .conftest import start_learner_db, wait_until_serving

REPO = Path(__file__).resolve().parent.parent
LESSON = REPO / "code" / "chapter_05"

Check = Callable[[Result], Awaitable[str]]
Setup = Callable[[asyncpg.Connection], Awaitable[Any]]


def load_check(name: str) -> Check:
    """The `check` function of code/chapter_05/<name>_check.py (loaded by path: `code` is also a stdlib module)."""
    path = LESSON / f"{name}_check.py"
    spec = importlib.util.spec_from_file_location(f"exercise_check_{name}", path)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    check: Check = module.check
    return check


@pytest.fixture(scope="module")
def db_port() -> Iterator[int]:
    port = free_port()
    process = start_learner_db(port)
    try:
        wait_until_serving(process)
        yield port
    finally:
        process.terminate()
        process.wait(30)


def query(
    connection: int, start: float, end: float, sql: str, *, rows: int = 0, parameters: int = 0, **more: Any
) -> Query:
    fields: dict[str, Any] = {"error": None, "error_message": None, "cancelled": False, "transaction_after": "idle"}
    fields.update(more)
    return Query(connection=connection, start=start, end=end, sql=sql, rows=rows, parameters=parameters, **fields)


def result(
    stdout: str = "",
    queries: list[Query] | None = None,
    *,
    connections: int | None = None,
    exception: tuple[str, str] | None = None,
    cancel_requests: list[float] | None = None,
    closed: int | None = None,
) -> Result:
    queries = queries or []
    opened = len({q.connection for q in queries}) if connections is None else connections
    return Result(
        status="error" if exception else "ok",
        exit_code=1 if exception else 0,
        stdout=stdout,
        stderr="",
        exception=RaisedException(*exception) if exception else None,
        seconds=max((q.end for q in queries), default=0.0) + 0.05,
        queries=queries,
        connections=opened,
        cancel_requests=cancel_requests or [],
        closed=opened if closed is None else closed,
        timings=[],
    )


class Judge:
    """Runs a check on a hand-made Result, with `db` a connection to the real products database."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def _judge(self, name: str, made: Result, setup: Setup | None) -> tuple[bool, str]:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", password="password", database="products"
        )
        transaction = conn.transaction()
        await transaction.start()
        try:
            if setup is not None:
                await setup(conn)
            made.db = conn
            try:
                return True, await load_check(name)(made)
            except NotSolved as verdict:
                return False, verdict.message
        finally:
            await transaction.rollback()
            await conn.close()

    def __call__(self, name: str, made: Result, setup: Setup | None = None) -> tuple[bool, str]:
        return asyncio.run(self._judge(name, made, setup))

    def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async def go() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user="postgres", password="password", database="products"
            )
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()

        return asyncio.run(go())


@pytest.fixture(scope="module")
def judge(db_port: int) -> Judge:
    return Judge(db_port)


def solved(verdict: tuple[bool, str]) -> str:
    passed, message = verdict
    assert passed, f"expected solved, got: {message}"
    assert message.startswith("Solved")
    return message


def not_solved(verdict: tuple[bool, str], *parts: str) -> str:
    passed, message = verdict
    assert not passed, f"expected not solved, got: {message}"
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


# -- every check: the program's own exception comes first -----------------------------------------

EXERCISES = sorted(p.name.removesuffix("_check.py") for p in LESSON.glob("ex*_check.py"))


def test_every_exercise_has_a_check_a_solution_and_test_data() -> None:
    assert len(EXERCISES) >= 8
    for name in EXERCISES:
        assert (LESSON / f"{name}.py").is_file(), name
        assert (LESSON / f"{name}_solution.py").is_file(), name
        data = REPO / "tests" / "exercises" / "chapter_05" / name
        assert (data / "starter.message").read_text(encoding="utf-8").strip(), name
        wrong = sorted(data.glob("wrong_*.py"))
        assert len(wrong) >= 2, f"{name}: two wrong answers or more"
        for path in wrong:
            first = path.read_text(encoding="utf-8").splitlines()[0]
            assert first.startswith("# message: ") and first.removeprefix("# message: ").strip(), path


@pytest.mark.parametrize("name", EXERCISES)
def test_a_program_that_stopped_with_an_exception_is_not_solved(judge: Judge, name: str) -> None:
    made = result("", [], exception=("ZeroDivisionError", "division by zero"))
    not_solved(judge(name, made), "Your code stopped with ZeroDivisionError: division by zero")


# -- 1: one connection, one query ---------------------------------------------------------------------


def _brands(judge: Judge) -> int:
    return int(judge.fetch("SELECT count(*) AS n FROM brand")[0]["n"])


def _major(judge: Judge) -> int:
    return int(judge.fetch("SHOW server_version_num")[0][0]) // 10000


def test_ex01_one_connection_and_one_query_is_solved(judge: Judge) -> None:
    out = f"server version: {_major(judge)}\nbrands: {_brands(judge)}\n"
    made = result(out, [query(1, 0.1, 0.11, "SELECT count(*) FROM brand", rows=1)])
    assert "one connection and one query" in solved(judge("ex01_one_connection", made))


def test_ex01_a_connection_left_open_is_not(judge: Judge) -> None:
    out = f"server version: {_major(judge)}\nbrands: {_brands(judge)}\n"
    made = result(out, [query(1, 0.1, 0.11, "SELECT count(*) FROM brand", rows=1)], closed=0)
    not_solved(judge("ex01_one_connection", made), "left its connection open", "await conn.close()")


def test_ex01_a_connection_per_question_is_not(judge: Judge) -> None:
    queries = [
        query(1, 0.1, 0.11, "SELECT version()", rows=1),
        query(2, 0.2, 0.21, "SELECT count(*) FROM brand", rows=1),
    ]
    out = f"server version: PostgreSQL {_major(judge)}.0\nbrands: {_brands(judge)}\n"
    not_solved(judge("ex01_one_connection", result(out, queries)), "opened 2 connections")


def test_ex01_a_version_query_is_not(judge: Judge) -> None:
    queries = [
        query(1, 0.1, 0.11, "SHOW server_version", rows=1),
        query(1, 0.2, 0.21, "SELECT count(*) FROM brand", rows=1),
    ]
    out = f"server version: {_major(judge)}\nbrands: {_brands(judge)}\n"
    not_solved(judge("ex01_one_connection", result(out, queries)), "SHOW server_version", "get_server_version()")


def test_ex01_the_output_must_hold_the_major_version_and_the_count(judge: Judge) -> None:
    brand_query = [query(1, 0.1, 0.11, "SELECT count(*) FROM brand", rows=1)]
    whole = f"server version: ServerVersion(major={_major(judge)}, minor=0)\nbrands: {_brands(judge)}\n"
    not_solved(judge("ex01_one_connection", result(whole, brand_query)), "print the major version alone")
    no_count = f"server version: {_major(judge)}\nbrands: {_brands(judge) + 1}\n"
    not_solved(judge("ex01_one_connection", result(no_count, brand_query)), "but the table holds")
    not_solved(judge("ex01_one_connection", result("", brand_query)), "no line `server version: ...`")
    not_solved(
        judge("ex01_one_connection", result(f"server version: {_major(judge)}\n", [])), "No query on the brand table"
    )


# -- 2: the brand and the SKUs of product 100 ---------------------------------------------------------


def _product_100(judge: Judge) -> tuple[int, str, int, int]:
    row = judge.fetch(
        "SELECT p.brand_id, b.brand_name, (SELECT count(*) FROM sku WHERE product_id = 100) AS skus, "
        "(SELECT count(*) FROM sku) AS total FROM product p JOIN brand b USING (brand_id) WHERE product_id = 100"
    )[0]
    return row["brand_id"], row["brand_name"], row["skus"], row["total"]


def test_ex02_the_brand_name_and_a_count_by_the_server_is_solved(judge: Judge) -> None:
    _, name, skus, _ = _product_100(judge)
    queries = [
        query(1, 0.1, 0.11, "SELECT b.brand_name FROM product AS p JOIN brand AS b ...", rows=1),
        query(1, 0.2, 0.21, "SELECT count(*) FROM sku WHERE product_id = 100", rows=1),
    ]
    assert name in solved(judge("ex02_brand_and_skus", result(f"brand: {name}\nskus: {skus}\n", queries)))


def test_ex02_wrong_brand_and_counts_are_named(judge: Judge) -> None:
    brand_id, name, skus, total = _product_100(judge)
    count = [query(1, 0.2, 0.21, "SELECT count(*) FROM sku WHERE product_id = 100", rows=1)]
    cases = {
        "product 100: x\nbrand id: 33\n": "no line `brand: ...`",
        f"brand: {brand_id}\nskus: {skus}\n": "that is the brand's id",
        f"brand: not-{name}\nskus: {skus}\n": "is not the name of the brand",
        f"brand: {name}\n": "no line `skus: ...`",
        f"brand: {name}\nskus: {total}\n": "every SKU in the table",
        f"brand: {name}\nskus: {skus + 1}\n": "another number of SKUs",
    }
    for out, part in cases.items():
        not_solved(judge("ex02_brand_and_skus", result(out, count)), part)


def test_ex02_counting_the_rows_in_python_is_not(judge: Judge) -> None:
    _, name, skus, _ = _product_100(judge)
    shipped = [query(1, 0.2, 0.25, "SELECT sku_id FROM sku WHERE product_id = 100", rows=skus)]
    not_solved(
        judge("ex02_brand_and_skus", result(f"brand: {name}\nskus: {skus}\n", shipped)),
        f"sent {skus} rows back",
        "Let the server count",
    )


# -- 3: both queries answered, still at once ----------------------------------------------------------

PRODUCT_100 = "SELECT p.product_id, s.sku_id FROM product AS p JOIN sku AS s ON ... WHERE p.product_id = 100"
BOTH = "query 1 succeeded: SELECT 109\nquery 2 succeeded: SELECT 109\n"


def test_ex03_two_connections_at_once_is_solved(judge: Judge) -> None:
    queries = [query(1, 0.100, 0.108, PRODUCT_100, rows=109), query(2, 0.101, 0.109, PRODUCT_100, rows=109)]
    solved(judge("ex03_two_connections", result(BOTH, queries)))


def test_ex03_the_interface_error_is_not(judge: Judge) -> None:
    out = "query 1 succeeded: SELECT 109\nquery 2 failed: InterfaceError: cannot perform operation\n"
    made = result(out, [query(1, 0.1, 0.108, PRODUCT_100, rows=109)])
    not_solved(judge("ex03_two_connections", made), "InterfaceError", "Open a second connection")


def test_ex03_one_after_the_other_is_not(judge: Judge) -> None:
    same = [query(1, 0.100, 0.108, PRODUCT_100, rows=109), query(1, 0.109, 0.117, PRODUCT_100, rows=109)]
    not_solved(judge("ex03_two_connections", result(BOTH, same)), "one after the other on the same connection")
    in_turn = [query(1, 0.100, 0.108, PRODUCT_100, rows=109), query(2, 0.109, 0.117, PRODUCT_100, rows=109)]
    not_solved(judge("ex03_two_connections", result(BOTH, in_turn)), "only once the first was answered")
    one = [query(1, 0.100, 0.108, PRODUCT_100, rows=109)]
    not_solved(judge("ex03_two_connections", result(BOTH, one)), "answered 1 product-100 query")


# -- 4: a hundred lookups at once ----------------------------------------------------------------------

SKU_COUNT = "SELECT count(*) FROM sku WHERE product_id = $1"


def _sku_lines(judge: Judge) -> str:
    rows = judge.fetch(
        "SELECT product_id, (SELECT count(*) FROM sku s WHERE s.product_id = p.product_id) AS n "
        "FROM product p WHERE product_id <= 100 ORDER BY product_id"
    )
    return "".join(f"product {r['product_id']}: {r['n']} SKUs\n" for r in rows)


def _lookups(connections: int, each: float = 0.006) -> list[Query]:
    """100 lookups spread over `connections` connections, each one busy with one lookup at a time."""
    made = []
    for n in range(100):
        lane, turn = n % connections, n // connections
        start = 0.1 + turn * (each + 0.001) + lane * 0.0002
        made.append(query(lane + 1, start, start + each, SKU_COUNT, rows=1, parameters=1))
    return made


def test_ex04_six_connections_at_once_is_solved(judge: Judge) -> None:
    message = solved(judge("ex04_pool_lookups", result(_sku_lines(judge), _lookups(6))))
    assert "up to 6 at once" in message


def test_ex04_too_few_at_once_is_not(judge: Judge) -> None:
    out = _sku_lines(judge)
    not_solved(judge("ex04_pool_lookups", result(out, _lookups(1))), "one at a time")
    not_solved(judge("ex04_pool_lookups", result(out, _lookups(2))), "at most 2 at once")
    not_solved(judge("ex04_pool_lookups", result(out, _lookups(3))), "at most 3 at once")


def test_ex04_the_output_must_stay_the_same(judge: Judge) -> None:
    lines = _sku_lines(judge).splitlines(keepends=True)
    shuffled = "".join(lines[1::2] + lines[0::2])
    not_solved(judge("ex04_pool_lookups", result(shuffled, _lookups(6))), "in another order")
    changed = "".join([*lines[:5], "product 6: 0 SKUs\n", *lines[6:]])
    not_solved(judge("ex04_pool_lookups", result(changed, _lookups(6))), "line 6 says `product 6: 0 SKUs`")
    not_solved(judge("ex04_pool_lookups", result("".join(lines[:50]), _lookups(6))), "50 lines were printed")


def test_ex04_one_query_for_all_is_not(judge: Judge) -> None:
    one = [query(1, 0.1, 0.2, "SELECT product_id, count(*) FROM sku WHERE product_id <= 100 GROUP BY 1", rows=100)]
    not_solved(judge("ex04_pool_lookups", result(_sku_lines(judge), one)), "answered 1 query on sku")


def test_ex04_a_shared_connection_gets_the_hint(judge: Judge) -> None:
    made = result("", [], exception=("InterfaceError", "cannot perform operation: another operation is in progress"))
    not_solved(judge("ex04_pool_lookups", made), "InterfaceError", "borrow its own")


# -- 5: never more than three at once -----------------------------------------------------------------

SLOW = "SELECT product_name FROM product, pg_sleep(0.1) WHERE product_id = $1"


def _names(judge: Judge) -> str:
    rows = judge.fetch("SELECT product_id, product_name FROM product WHERE product_id <= 30 ORDER BY product_id")
    return "".join(f"{r['product_id']}: {r['product_name']}\n" for r in rows)


def _slow(at_once: int, pool: int = 10) -> list[Query]:
    """30 slow lookups, `at_once` at a time, on the first connections of a pool of `pool`."""
    made = []
    for n in range(30):
        lane, turn = n % at_once, n // at_once
        start = 0.1 + turn * 0.102 + lane * 0.001
        made.append(query(lane % pool + 1, start, start + 0.1, SLOW, rows=1, parameters=1))
    return made


def test_ex05_three_at_once_through_the_pool_of_ten_is_solved(judge: Judge) -> None:
    solved(judge("ex05_at_most_three", result(_names(judge), _slow(3), connections=10)))


def test_ex05_more_or_fewer_than_three_is_not(judge: Judge) -> None:
    out = _names(judge)
    not_solved(judge("ex05_at_most_three", result(out, _slow(10), connections=10)), "Up to 10 lookups")
    not_solved(judge("ex05_at_most_three", result(out, _slow(4), connections=10)), "Up to 4 lookups")
    not_solved(judge("ex05_at_most_three", result(out, _slow(1), connections=10)), "At most 1 lookup ran")
    not_solved(judge("ex05_at_most_three", result(out, _slow(2), connections=10)), "At most 2 lookups ran")


def test_ex05_a_smaller_pool_is_not(judge: Judge) -> None:
    made = result(_names(judge), _slow(3, pool=3), connections=3)
    not_solved(judge("ex05_at_most_three", made), "opened 3 connections", "the pool was made smaller")


def test_ex05_every_lookup_and_the_output_are_needed(judge: Judge) -> None:
    not_solved(judge("ex05_at_most_three", result(_names(judge), _slow(3)[:20], connections=10)), "Only 20 of the 30")
    lines = _names(judge).splitlines(keepends=True)
    out = "".join(reversed(lines))
    not_solved(judge("ex05_at_most_three", result(out, _slow(3), connections=10)), "in another order")


# -- 6: two brands, or neither ------------------------------------------------------------------------

FIRST, SECOND = "INSERT INTO brand VALUES (501, 'north')", "INSERT INTO brand VALUES (502, NULL)"
NOT_NULL = {"error": "23502", "error_message": 'null value in column "brand_name"'}


def _transaction(end: str = "ROLLBACK;", catch_inside: bool = False) -> list[Query]:
    return [
        query(1, 0.10, 0.101, "DELETE FROM brand WHERE brand_id IN (501, 502)", transaction_after="idle"),
        query(1, 0.11, 0.111, "BEGIN;", transaction_after="transaction"),
        query(1, 0.12, 0.121, FIRST, transaction_after="transaction"),
        query(1, 0.13, 0.131, SECOND, transaction_after="failed", **NOT_NULL),
        query(1, 0.14, 0.141, end, transaction_after="idle"),
        query(1, 0.15, 0.151, "SELECT brand_id FROM brand WHERE brand_id IN (501, 502)", transaction_after="idle"),
    ]


async def _keep_501(conn: asyncpg.Connection) -> None:
    await conn.execute(FIRST)


def test_ex06_a_rolled_back_transaction_is_solved(judge: Judge) -> None:
    solved(judge("ex06_both_or_neither", result("the second insert failed\nbrands kept: []\n", _transaction())))


def test_ex06_the_first_brand_left_behind_is_not(judge: Judge) -> None:
    queries = [
        query(1, 0.12, 0.121, FIRST, transaction_after="idle"),
        query(1, 0.13, 0.131, SECOND, transaction_after="idle", **NOT_NULL),
    ]
    not_solved(
        judge("ex06_both_or_neither", result("brands kept: [501]\n", queries), setup=_keep_501),
        "Brand 501 is in the table",
        "committed on its own",
    )


def test_ex06_deleting_by_hand_is_not(judge: Judge) -> None:
    queries = [
        query(1, 0.12, 0.121, FIRST, transaction_after="idle"),
        query(1, 0.13, 0.131, SECOND, transaction_after="idle", **NOT_NULL),
        query(1, 0.14, 0.141, "DELETE FROM brand WHERE brand_id = 501", transaction_after="idle"),
    ]
    not_solved(judge("ex06_both_or_neither", result("", queries)), "removed by hand")


def test_ex06_a_commit_after_the_failure_is_not(judge: Judge) -> None:
    not_solved(judge("ex06_both_or_neither", result("", _transaction(end="COMMIT;"))), "it ended with `COMMIT;")


def test_ex06_removing_the_failing_insert_is_not(judge: Judge) -> None:
    queries = [query(1, 0.12, 0.121, FIRST, transaction_after="idle")]
    not_solved(judge("ex06_both_or_neither", result("", queries)), "No insert into brand failed")


def test_ex06_an_uncaught_failure_gets_the_hint(judge: Judge) -> None:
    made = result("", _transaction()[:5], exception=("NotNullViolationError", 'null value in column "brand_name"'))
    not_solved(judge("ex06_both_or_neither", made), "NotNullViolationError", "The second insert is meant to fail")


# -- 7: stop reading once you have three --------------------------------------------------------------

STREAM = "SELECT product_id, product_name FROM product ORDER BY product_id"


def _first_rain(judge: Judge, word_match: bool = True) -> list[asyncpg.Record]:
    rows = judge.fetch(STREAM)
    if word_match:
        return [r for r in rows if "rain" in r["product_name"].split()][:3]
    return [r for r in rows if "rain" in r["product_name"]][:3]


def _printed(rows: list[asyncpg.Record]) -> str:
    return "".join(f"{r['product_id']} {r['product_name']}\n" for r in rows)


def _batches(rows: int, batch: int = 50) -> list[Query]:
    """A cursor's batches: one execution per batch of the same statement, in a transaction."""
    return [
        query(
            1,
            0.1 + i / 100,
            0.105 + i / 100,
            STREAM,
            rows=min(batch, rows - i * batch),
            transaction_after="transaction",
        )
        for i in range((rows + batch - 1) // batch)
    ]


def test_ex07_a_cursor_left_early_is_solved(judge: Judge) -> None:
    found = _first_rain(judge)
    read = (found[-1]["product_id"] // 50 + 1) * 50
    assert read < 1000
    assert f"only {read} of 1000" in solved(judge("ex07_stop_early", result(_printed(found), _batches(read))))


def test_ex07_a_cursor_recorded_as_one_query_left_early_is_solved(judge: Judge) -> None:
    """Whether the record shows one query per batch or one per cursor, the rows read are what counts."""
    found = _first_rain(judge)
    one = [query(1, 0.1, 0.2, STREAM, rows=350, transaction_after="transaction")]
    solved(judge("ex07_stop_early", result(_printed(found), one)))


def test_ex07_reading_every_product_is_not(judge: Judge) -> None:
    found = _printed(_first_rain(judge))
    fetched = [query(1, 0.1, 0.2, STREAM, rows=1000)]
    not_solved(judge("ex07_stop_early", result(found, fetched)), "read 1000 product rows from the server to print 3")
    not_solved(judge("ex07_stop_early", result(found, _batches(1000))), "read 1000 product rows")


def test_ex07_substrings_are_not_words(judge: Judge) -> None:
    out = _printed(_first_rain(judge, word_match=False))
    not_solved(judge("ex07_stop_early", result(out, _batches(150))), "not the word `rain`", "name.split()")


def test_ex07_other_products_are_not(judge: Judge) -> None:
    first = _printed(judge.fetch(STREAM)[:3])
    not_solved(judge("ex07_stop_early", result(first, _batches(50))), "it has 3 lines, and they are not those")
    not_solved(judge("ex07_stop_early", result("", _batches(50))), "it has 0 lines")


def test_ex07_filtering_on_the_server_is_not(judge: Judge) -> None:
    found = _first_rain(judge)
    sql = "SELECT product_id, product_name FROM product WHERE product_name ~ '\\mrain\\M' ORDER BY product_id LIMIT 3"
    not_solved(judge("ex07_stop_early", result(_printed(found), [query(1, 0.1, 0.2, sql, rows=3)])), "on the server")


def test_ex07_no_transaction_gets_the_hint(judge: Judge) -> None:
    outside = "cursor cannot be created outside of a transaction"
    made = result("", [], exception=("NoActiveSQLTransactionError", outside))
    not_solved(judge("ex07_stop_early", made), "async with conn.transaction()")


# -- 8: the id as a parameter --------------------------------------------------------------------------

LOOKUP = "SELECT product_name FROM product WHERE product_id = $1"


def _three_names(judge: Judge) -> str:
    rows = judge.fetch("SELECT product_id, product_name FROM product WHERE product_id IN (7, 42, 512)")
    names = {r["product_id"]: r["product_name"] for r in rows}
    return "".join(f"{i}: {names[i]}\n" for i in (7, 42, 512))


def test_ex08_bound_parameters_are_solved(judge: Judge) -> None:
    queries = [query(1, 0.1 + i / 100, 0.105 + i / 100, LOOKUP, rows=1, parameters=1) for i in range(3)]
    assert "1 SQL text," in solved(judge("ex08_query_parameter", result(_three_names(judge), queries)))


def test_ex08_an_id_in_the_sql_text_is_not(judge: Judge) -> None:
    queries = [
        query(1, 0.1 + n / 100, 0.105 + n / 100, f"SELECT product_name FROM product WHERE product_id = {i}", rows=1)
        for n, i in enumerate((7, 42, 512))
    ]
    message = not_solved(judge("ex08_query_parameter", result(_three_names(judge), queries)), "the id 7 is part")
    assert "`SELECT product_name FROM product WHERE product_id = 7`" in message


def test_ex08_missing_parameters_and_a_changed_output_are_not(judge: Judge) -> None:
    unbound = [query(1, 0.1, 0.105, "SELECT product_name FROM product WHERE product_id = 1 + 6", rows=1)]
    not_solved(judge("ex08_query_parameter", result(_three_names(judge), unbound)), "0 of the 3 lookups")
    two = [query(1, 0.1 + i / 100, 0.105 + i / 100, LOOKUP, rows=1, parameters=1) for i in range(2)]
    not_solved(judge("ex08_query_parameter", result(_three_names(judge), two)), "2 of the 3 lookups")
    three = [query(1, 0.1 + i / 100, 0.105 + i / 100, LOOKUP, rows=1, parameters=1) for i in range(3)]
    not_solved(judge("ex08_query_parameter", result("7: nothing\n", three)), "Keep the output as it was")


def test_ex08_a_string_argument_gets_the_hint(judge: Judge) -> None:
    made = result("", [], exception=("DataError", "invalid input for query argument $1: '7'"))
    not_solved(judge("ex08_query_parameter", made), "DataError", "pass the id as the int it is")


# -- 9: give up after half a second --------------------------------------------------------------------

REPORT = "SELECT 'the report', pg_sleep(3)"
CANCELLED = {"error": "57014", "error_message": "canceling statement due to user request", "cancelled": True}


def test_ex09_a_report_cancelled_after_half_a_second_is_solved(judge: Judge) -> None:
    queries = [query(1, 0.10, 0.62, REPORT, **CANCELLED), query(1, 0.63, 0.631, "SELECT 'yes'", rows=1)]
    made = result("gave up after 0.5 s\n", queries, cancel_requests=[0.60])
    assert "after 0.52 s" in solved(judge("ex09_give_up", made))


def test_ex09_a_preparation_recorded_before_the_report_does_not_hide_it(judge: Judge) -> None:
    """fetchval prepares the statement first: a record may show that short round trip as a query of its own."""
    queries = [query(1, 0.10, 0.101, REPORT), query(1, 0.102, 0.61, REPORT, **CANCELLED)]
    solved(judge("ex09_give_up", result("gave up\n", queries, cancel_requests=[0.60])))
    ran = [query(1, 0.10, 0.101, REPORT), query(1, 0.102, 3.1, REPORT, rows=1)]
    not_solved(judge("ex09_give_up", result("", ran)), "ran to its end", "(3.0 s)")


def test_ex09_a_report_that_ran_to_its_end_is_not(judge: Judge) -> None:
    made = result("the report arrived after 3.0 s\n", [query(1, 0.1, 3.1, REPORT, rows=1)])
    not_solved(judge("ex09_give_up", made), "ran to its end", "(3.0 s)")


def test_ex09_too_late_too_early_or_by_the_server_is_not(judge: Judge) -> None:
    late = result("", [query(1, 0.1, 2.1, REPORT, **CANCELLED)], cancel_requests=[2.08])
    not_solved(judge("ex09_give_up", late), "only after 2.0 s")
    early = result("", [query(1, 0.1, 0.2, REPORT, **CANCELLED)], cancel_requests=[0.19])
    not_solved(judge("ex09_give_up", early), "after 0.10 s, before")
    server = {**CANCELLED, "error_message": "canceling statement due to statement timeout"}
    by_server = result("gave up\n", [query(1, 0.1, 0.6, REPORT, **server)])
    not_solved(judge("ex09_give_up", by_server), "statement_timeout")
    other = result("", [query(1, 0.1, 0.2, REPORT, error="42P01", error_message="relation does not exist")])
    not_solved(judge("ex09_give_up", other), "failed with 42P01")
    not_solved(judge("ex09_give_up", result("", [])), "never reached the server")


def test_ex09_an_uncaught_timeout_gets_the_hint(judge: Judge) -> None:
    made = result("", [query(1, 0.1, 0.6, REPORT, **CANCELLED)], exception=("TimeoutError", ""))
    not_solved(judge("ex09_give_up", made), "except TimeoutError:")


# -- 10: skip the duplicate, keep the rest --------------------------------------------------------------

NEW = ((601, "maple"), (602, "cedar"), (603, "birch"), (604, "alder"))
INSERT = "INSERT INTO brand VALUES ($1, $2)"
UNIQUE = {"error": "23505", "error_message": "duplicate key value violates unique constraint"}


async def _insert_new(conn: asyncpg.Connection) -> None:
    await conn.executemany(INSERT, NEW)


def _import(savepoints: bool = True, outer: bool = True) -> list[Query]:
    made, t = [], 0.1
    state = "transaction" if outer else "idle"

    def add(sql: str, **more: Any) -> None:
        nonlocal t
        made.append(query(1, t, t + 0.001, sql, **more))
        t += 0.002

    if outer:
        add("BEGIN;", transaction_after="transaction")
    for brand_id in (601, 602, 7, 603, 604):
        if savepoints:
            add(f"SAVEPOINT sp_{brand_id};", transaction_after=state)
        if brand_id == 7:
            add(INSERT, parameters=2, transaction_after="failed" if outer else "idle", **UNIQUE)
            if savepoints:
                add(f"ROLLBACK TO sp_{brand_id};", transaction_after=state)
        else:
            add(INSERT, parameters=2, transaction_after=state)
            if savepoints:
                add(f"RELEASE SAVEPOINT sp_{brand_id};", transaction_after=state)
    if outer:
        add("COMMIT;", transaction_after="idle")
    return made


OUTPUT_10 = (
    "added brand 601\nadded brand 602\nskipped brand 7: UniqueViolationError\nadded brand 603\nadded brand 604\n"
)


def test_ex10_savepoints_in_one_transaction_are_solved(judge: Judge) -> None:
    solved(judge("ex10_skip_the_duplicate", result(OUTPUT_10, _import()), setup=_insert_new))


def test_ex10_an_aborted_transaction_is_not(judge: Judge) -> None:
    queries = _import(savepoints=False)
    for n, q in enumerate(queries):
        if q.start > queries[3].start and q.sql == INSERT:  # after the duplicate: refused
            queries[n] = query(1, q.start, q.end, INSERT, parameters=2, error="25P02", transaction_after="failed")
    not_solved(judge("ex10_skip_the_duplicate", result("", queries)), "the transaction was aborted", "refused 2 later")
    not_solved(judge("ex10_skip_the_duplicate", result("", [])), "are not in the table after the run")


def test_ex10_inserts_committed_one_by_one_are_not(judge: Judge) -> None:
    made = result(OUTPUT_10, _import(savepoints=False, outer=False))
    not_solved(judge("ex10_skip_the_duplicate", made, setup=_insert_new), "4 insert(s) ran outside a transaction")


def test_ex10_overwriting_the_duplicate_is_not(judge: Judge) -> None:
    async def overwrite(conn: asyncpg.Connection) -> None:
        await _insert_new(conn)
        await conn.execute("UPDATE brand SET brand_name = 'bitter twin' WHERE brand_id = 7")

    not_solved(judge("ex10_skip_the_duplicate", result(OUTPUT_10, _import()), setup=overwrite), "was overwritten")


def test_ex10_the_skip_must_be_reported(judge: Judge) -> None:
    quiet = OUTPUT_10.replace("skipped brand 7: UniqueViolationError\n", "")
    not_solved(judge("ex10_skip_the_duplicate", result(quiet, _import()), setup=_insert_new), "skipped brand 7: ...")


def test_ex10_a_savepoint_caught_inside_gets_the_hint(judge: Judge) -> None:
    made = result("", [], exception=("InFailedSQLTransactionError", "current transaction is aborted"))
    not_solved(judge("ex10_skip_the_duplicate", made), "leaves the savepoint's block")

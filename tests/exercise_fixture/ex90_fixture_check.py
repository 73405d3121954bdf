"""Check of the fixture exercise: the database state, the wire record and the output together."""

from runner.checking import NotSolved, Result


async def check(result: Result) -> str:
    if result.exception is not None:
        raise NotSolved(f"stopped with {result.exception.type}: {result.exception.message}")
    names = await result.db.fetch("SELECT brand_name FROM brand WHERE brand_id = 9001")
    if [r["brand_name"] for r in names] != ["Checked"]:
        raise NotSolved(f"brand 9001 is {[r['brand_name'] for r in names]!r}, not ['Checked']")
    inserts = result.queries_matching(r"^\s*INSERT INTO brand")
    if not inserts or inserts[0].parameters != 1:
        raise NotSolved(f"no INSERT with one parameter among {len(result.queries)} queries")
    if result.max_concurrency() < 3:
        raise NotSolved(f"at most {result.max_concurrency()} queries ran at once, not 3")
    if "done" not in result.stdout:
        raise NotSolved("the program did not print done")
    return f"solved: {len(result.queries)} queries on {result.connections} connections, 3 at once"

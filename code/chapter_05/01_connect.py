"""Open one connection to Postgres and ask the server for its version."""

import asyncio

import asyncpg


async def main() -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1",
        port=5432,
        user="postgres",
        password="password",
        database="postgres",
    )
    version = conn.get_server_version()
    print(f"Connected! Postgres version is {version}")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

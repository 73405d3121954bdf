"""The same counter as an async generator, consumed with `async for`."""

import asyncio
from collections.abc import AsyncGenerator


async def count(until: int) -> AsyncGenerator[int, None]:
    for number in range(until):
        yield number


async def main() -> None:
    async for number in count(3):
        print(number)


if __name__ == "__main__":
    asyncio.run(main())

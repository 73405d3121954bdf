"""A plain generator: it yields ints, takes nothing via send() and returns nothing."""

from collections.abc import Generator


def count(until: int) -> Generator[int, None, None]:
    for number in range(until):
        yield number


def main() -> None:
    for number in count(3):
        print(number)


if __name__ == "__main__":
    main()

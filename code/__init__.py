"""The lesson's own code: run every sample as a module from the repository root.

    python code/setup_products_database.py          # once: creates and seeds `products`
    python -m code.chapter_05.04_pool_vs_sequential  # any sample, by its dotted path

`python -m` puts the repository root first on ``sys.path``, so this package is
found before the standard library's ``code`` module and
``from code.utils import async_timed`` works with no path tweaks.
"""

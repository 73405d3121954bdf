#!/usr/bin/env bash
# Seeds the `products` database with the lesson's own setup code.
#
# The official entrypoint runs this once, as the postgres user, when it initialises
# an empty data directory. Its temporary server listens on the unix socket only, so
# the seed script connects there, with the superuser and password the container
# was started with. PRODUCTS_SEED_DIR and POSTGRES_SOCKET_DIR exist for the tests,
# which run this file against a throwaway cluster outside Docker.
set -Eeo pipefail

seed_dir="${PRODUCTS_SEED_DIR:-/opt/workshop}"

PGHOST="${POSTGRES_SOCKET_DIR:-/var/run/postgresql}" \
PGPORT="${PGPORT:-5432}" \
PGUSER="${POSTGRES_USER:-postgres}" \
PGPASSWORD="${POSTGRES_PASSWORD:-}" \
    python3 "$seed_dir/seed_products.py"

#!/usr/bin/env bash
# docker-entrypoint.sh of the local PostgreSQL base (docker/base/make-local-bases):
# the part of the official postgres image's entrypoint the workshop relies on, for
# hosts that cannot pull that image.
#
#   - first start, empty $PGDATA: initdb as $POSTGRES_USER with $POSTGRES_PASSWORD
#     and $POSTGRES_INITDB_ARGS; password authentication over TCP; a temporary
#     server with the command's options but on the unix socket only
#     (listen_addresses=''), $POSTGRES_DB created, then every
#     /docker-entrypoint-initdb.d/ file run (*.sh executed, or sourced when not
#     executable; *.sql through psql); the temporary server stopped;
#   - then `postgres "$@"` as the postgres user (root drops to it first).
#
# Not covered: POSTGRES_HOST_AUTH_METHOD, *_FILE secrets, compressed *.sql.gz.
set -Eeuo pipefail

if [ $# -eq 0 ] || [ "${1:0:1}" = "-" ]; then
	set -- postgres "$@"
fi

if [ "$1" != "postgres" ]; then
	exec "$@"
fi

: "${PGDATA:?PGDATA is not set}"
if [ "$(id -u)" = "0" ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 0700 "$PGDATA"
	chmod 3777 /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

export POSTGRES_USER="${POSTGRES_USER:-postgres}"
export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

initialise() {
	shift  # "postgres": the temporary server takes the rest of the command's options
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "error: the database is uninitialised and POSTGRES_PASSWORD is not set" >&2
		exit 1
	fi
	# shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS holds several arguments
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") ${POSTGRES_INITDB_ARGS:-}
	printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

	export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
	set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
	pg_ctl --pgdata="$PGDATA" --wait --options="$(printf '%q ' "$@")" start
	local psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
	if [ "$POSTGRES_DB" != "postgres" ]; then
		"${psql[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
	fi
	local file
	for file in /docker-entrypoint-initdb.d/*; do
		case "$file" in
			*.sh)
				if [ -x "$file" ]; then
					echo "running $file"
					"$file"
				else
					echo "sourcing $file"
					# shellcheck disable=SC1090
					. "$file"
				fi
				;;
			*.sql)
				echo "running $file"
				"${psql[@]}" --dbname "$POSTGRES_DB" -f "$file"
				;;
			*/\*) ;;  # an empty directory
			*) echo "ignoring $file" ;;
		esac
	done
	pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop
	unset PGPASSWORD
	echo "PostgreSQL init process complete; ready for start up."
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	initialise "$@"
fi
exec "$@"

# Start a throwaway PostgreSQL cluster on loopback for the engine tests and export its URL.
# Sourced by .ci/run; developers can `source .ci/postgres.sh; start_postgres` too.
start_postgres() {
  local bindir port dir
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  port=${WATTLINE_PG_PORT:-55432}
  dir=${WATTLINE_PG_DIR:-/tmp/wattline-pg}
  if ! su postgres -s /bin/sh -c "$bindir/pg_ctl -D $dir status" >/dev/null 2>&1; then
    rm -rf "$dir"; mkdir -p "$dir"; chown postgres "$dir"
    su postgres -s /bin/sh -c "$bindir/initdb -D $dir -A trust -U postgres >/dev/null"
    su postgres -s /bin/sh -c "$bindir/pg_ctl -D $dir -l $dir/log -o '-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off' -w start >/dev/null"
  fi
  psql -h 127.0.0.1 -p "$port" -U postgres -tAc "select 1 from pg_database where datname='wattline_test'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$port" -U postgres -qc "create database wattline_test"
  WATTLINE_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/wattline_test"
  echo "== PostgreSQL at $WATTLINE_TEST_PG_URL"
}

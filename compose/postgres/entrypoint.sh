#!/bin/sh
# Serve PostgreSQL on POSTGRES_HOST:POSTGRES_PORT; on the first start, create the cluster with
# the user POSTGRES_USER (password POSTGRES_PASSWORD) and its database POSTGRES_DB.
set -eu
data=/var/lib/postgresql/data
user="${POSTGRES_USER:-paynotify}"
db="${POSTGRES_DB:-$user}"
if [ ! -s "$data/PG_VERSION" ]; then
  secret=$(mktemp)
  printf '%s' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}" > "$secret"
  initdb -D "$data" -U "$user" --pwfile="$secret" --auth=scram-sha-256 -E UTF8 --no-sync >/dev/null
  rm -f "$secret"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\" OWNER \"$user\"" | postgres --single -D "$data" postgres >/dev/null
  fi
fi
exec postgres -D "$data" -p "${POSTGRES_PORT:-5432}" \
  -c listen_addresses="${POSTGRES_HOST:-127.0.0.1}" -c unix_socket_directories=/tmp \
  -c fsync="${POSTGRES_FSYNC:-on}" -c jit=off

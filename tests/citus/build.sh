#!/usr/bin/env bash
# Builds and installs Citus 13.2.2 for the PostgreSQL 15 server of this machine, from the source in
# ../shared/vendor (not part of elt; AGPL-3.0). The build is cached in ~/.cache/elt/citus-<version>-pg<server
# version>, outside the clone; a cached build is only installed again (seconds). Needs root (apt-get, make install).
#
# Installing postgresql-server-dev-15 may upgrade the postgresql-15 server package: a server running at that
# moment then fails new connections. Run this before starting servers (make test-citus and .ci/run do).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=13.2.2

log() { printf '== citus: %s\n' "$*" >&2; }

# The source: $ELT_CITUS_VENDOR, else ../shared/vendor next to the clone, else the workplace's /work/shared/vendor.
vendor=
for d in "${ELT_CITUS_VENDOR:-}" "$here/../../../shared/vendor" /work/shared/vendor; do
    if [ -n "$d" ] && [ -f "$d/citus-$version.tar.gz" ]; then vendor=$(cd "$d" && pwd); break; fi
done
[ -n "$vendor" ] || { echo "citus: citus-$version.tar.gz not found in \$ELT_CITUS_VENDOR, ../shared/vendor or /work/shared/vendor; set ELT_CITUS_VENDOR to the folder that holds it" >&2; exit 1; }
tarball=$vendor/citus-$version.tar.gz
patchfile=$vendor/citus-pg15.20.patch

# 1. Build dependencies (Debian). postgresql-server-dev-15 brings pg_config and the server headers.
need=()
for p in postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libssl-dev autoconf flex bison make gcc; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "citus: missing packages ${need[*]}; run as root, or install them" >&2; exit 1; }
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${need[@]}" >&2
fi

pg_config=/usr/lib/postgresql/15/bin/pg_config
[ -x "$pg_config" ] || pg_config=$(command -v pg_config)
pgver=$("$pg_config" --version | awk '{print $2}')
libdir=$("$pg_config" --pkglibdir)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/elt/citus-$version-pg$pgver
src=$cache/citus-$version

# 2. Build once per Citus and server version.
if [ ! -f "$cache/built" ]; then
    log "building Citus $version for PostgreSQL $pgver in $cache (several minutes)"
    rm -rf "$cache"; mkdir -p "$cache"
    tar xzf "$tarball" -C "$cache"
    if [ -f "$patchfile" ] && grep -q 'have_createdb_privilege' "$("$pg_config" --includedir-server)/commands/dbcommands.h"; then
        (cd "$src" && patch -p1 -s < "$patchfile")
    fi
    (cd "$src" && PG_CONFIG=$pg_config ./configure --without-libcurl -q >&2 && make -s -j"$(nproc)" >&2)
    touch "$cache/built"
fi

# 3. Install (again, if the server package was reinstalled since).
if ! cmp -s "$src/src/backend/distributed/citus.so" "$libdir/citus.so" 2>/dev/null; then
    log "installing into $libdir"
    (cd "$src" && make -s install >&2)
fi
log "Citus $version ready for PostgreSQL $pgver"

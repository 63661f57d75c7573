#!/bin/sh
# /usr/bin/umbrella from the OpenWrt package: Deno and the glibc it is built
# for run from /usr/lib/umbrella, apart from the system's musl, through
# glibc's own loader; the program is one file (deno task bundle).
ROOT=/usr/lib/umbrella
# SRTP's libcrypto must be the glibc build beside Deno, never the system's.
export UMBRELLA_LIBCRYPTO="$ROOT/lib/libcrypto.so.3"
exec "$ROOT/lib/@LOADER@" --library-path "$ROOT/lib" "$ROOT/deno" run \
	--no-config @PERMISSIONS@ "$ROOT/umbrella.js" "$@"

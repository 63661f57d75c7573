# Umbrella for the cloud, behind a TLS-terminating proxy (compose.yaml runs
# it behind Traefik; docs/docker.md). The image holds Deno and one file, the
# whole program as `deno task bundle` makes it.
ARG DENO_VERSION=2.9.6

FROM denoland/deno:debian-${DENO_VERSION} AS build
WORKDIR /src
COPY deno.json deno.lock main.ts ./
COPY server server
COPY media media
COPY proto proto
COPY ui ui
RUN deno task bundle && mkdir /data

FROM denoland/deno:debian-${DENO_VERSION}
# libcrypto is what SRTP runs on through FFI; without it Umbrella falls back
# to node:crypto, several times slower per packet.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/dist/umbrella.js /app/umbrella.js
COPY --from=build --chown=deno:deno /data /data
# Media uses this UDP range, published one to one by compose.yaml; the
# proxy in front serves HTTPS, so Umbrella serves plain HTTP (cloud mode).
ENV UMBRELLA_CLOUD=1 \
    UMBRELLA_DATA_DIR=/data \
    UMBRELLA_MIN_PORT=40000 \
    UMBRELLA_MAX_PORT=40099 \
    UMBRELLA_MDNS=0
VOLUME /data
EXPOSE 8081/tcp 40000-40099/udp
USER deno
HEALTHCHECK --interval=30s --timeout=5s \
  CMD ["deno", "eval", "const r = await fetch(`http://127.0.0.1:8081${Deno.env.get('UMBRELLA_HTTP_PREFIX') ?? ''}/healthz`); Deno.exit(r.ok ? 0 : 1)"]
ENTRYPOINT ["deno", "run", "--no-config", "--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys", "--allow-ffi", "/app/umbrella.js"]

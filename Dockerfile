# syntax=docker/dockerfile:1
# Multi-stage build on the official Bun image; the runtime stage has production dependencies only
# and runs as the image's non-root `bun` user.
ARG BUN_VERSION=1.4.5

FROM oven/bun:${BUN_VERSION} AS deps
WORKDIR /app
COPY package.json bun.lock bunfig.toml ./
RUN bun install --frozen-lockfile --production --ignore-scripts

FROM oven/bun:${BUN_VERSION}-slim AS runtime
WORKDIR /app
# Read at start-up, so set here (the same as package.json's start script): Bun's fetch allows 256 requests in
# flight unless raised; freed memory is kept 10 s for reuse instead of being handed back to the kernel between
# two bursts of streams and faulted in again (bench/RESULTS.md, issue 4)
ENV NODE_ENV=production \
    PORT=8080 \
    DATA_DIR=/app/data \
    BUN_CONFIG_MAX_HTTP_REQUESTS=4096 \
    MIMALLOC_PURGE_DELAY=10000 \
    MIMALLOC_PURGE_HOLES=0
COPY --from=deps /app/node_modules ./node_modules
COPY package.json bunfig.toml tsconfig.json ./
COPY src ./src
COPY drizzle ./drizzle
RUN mkdir -p /app/data && chown bun:bun /app/data
USER bun
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["bun", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]
CMD ["bun", "src/index.ts"]

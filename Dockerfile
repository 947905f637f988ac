# Switchboard image: `docker build -t switchboard --build-arg GIT_COMMIT=$(git rev-parse HEAD) .`, then
#   docker run -p 8081:8081 -v switchboard-data:/data switchboard
# or the whole stack with docker-compose.yml. The image runs the compiled code (dist/) on Node 24 LTS
# with production dependencies only, as the unprivileged `node` user.

# Build stage: the full Node image has python3, make and g++ for native addons (argon2, sharp) that
# have no prebuilt binary for the platform.
FROM node:24-trixie AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY sdk/package.json ./sdk/
COPY web/package.json ./web/
# Dependencies first (their own layer, reused while the lockfile is unchanged); --ignore-scripts
# skips our `prepare` (the sources are not here yet), `npm rebuild` then runs the addons' install scripts.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bridges ./bridges
COPY sdk ./sdk
COPY web ./web
# The hub into dist/, the SDK into sdk/dist/, the web client into web/dist/ (served at /).
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# Runtime stage: same Debian release (glibc) as the build stage, without the toolchain, tsx or TypeScript.
FROM node:24-trixie-slim
ARG GIT_COMMIT=""
ENV NODE_ENV=production \
    SWITCHBOARD_HOST=0.0.0.0 \
    SWITCHBOARD_DATA_DIR=/data \
    GIT_COMMIT=$GIT_COMMIT
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/web/dist ./web/dist
COPY package.json ./
COPY bin ./bin
COPY migrations ./migrations
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.SWITCHBOARD_PORT || 8081}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "bin/switchboard.js", "serve"]

# Switchboard image: `docker build -t switchboard .`, then
#   docker run -p 8081:8081 -v switchboard-data:/data switchboard
# The hub runs from its TypeScript sources through tsx (a runtime dependency); nothing is compiled.

# Build stage: the full Node image has python3, make and g++ for native addons (argon2, sharp) that
# have no prebuilt binary for the platform.
FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# Runtime stage: same Debian release (glibc) as the build stage, without the toolchain.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    SWITCHBOARD_HOST=0.0.0.0 \
    SWITCHBOARD_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY bridges ./bridges
COPY migrations ./migrations
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.SWITCHBOARD_PORT || 8081}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "bin/switchboard.js", "serve"]

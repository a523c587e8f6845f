# seqwatch container image: a sidecar next to gotrs-postgres (see deploy/compose.yaml).
# docker build -t seqwatch .
# Runs as the unprivileged user `node`, with a read-only root filesystem: it writes only to
# /var/lib/seqwatch (state, health file) and /var/log/seqwatch (audit log), both volumes.
# For production, pin the base image by digest (`docker buildx imagetools inspect node:20-alpine`
# prints it): FROM node:20-alpine@sha256:<digest>. None is written here: no registry could be
# asked where this file was written, and a made-up digest would only fail the build.

FROM node:20-alpine AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
COPY scripts/bundle.mjs ./scripts/
# dist/devtools (throwaway servers and the demo, for tests and `npm run demo`) imports
# devDependencies and is not part of the program: left out of the image, as out of the package.
# `npm run build`: tsc, then the bundle of the program (scripts/bundle.mjs: start-up).
RUN npm run build && rm -rf dist/devtools && npm prune --omit=dev --ignore-scripts

FROM node:20-alpine
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY config/seqwatch.example.yaml config/seqwatch-role.sql ./config/
RUN mkdir -p /etc/seqwatch /var/lib/seqwatch /var/log/seqwatch \
 && chown node:node /var/lib/seqwatch /var/log/seqwatch
USER node
VOLUME ["/var/lib/seqwatch", "/var/log/seqwatch"]
# `seqwatch health` reads the health file the daemon refreshes every 5 s: following its logs,
# database answering.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/dist/cli/main.js", "health", "-c", "/etc/seqwatch/seqwatch.yaml"]
# Node is PID 1 and handles SIGTERM/SIGINT/SIGHUP itself (stops cleanly, exit 0).
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["run", "-c", "/etc/seqwatch/seqwatch.yaml"]

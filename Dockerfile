# mcp-portal controller image.
#
#   docker build -t mcp-portal .                       # normal machine: npm ci + tsc inside the build
#   scripts/build-image.sh                              # this repo's helper: picks a base, works offline
#
# Build args:
#   BASE_IMAGE  Node runtime for both stages (default node:24-alpine). Needs `node`, `sh` and a uid 1000.
#   NPM_CI      1 (default): the build stage runs `npm ci`, `npm run build` (tsc, then esbuild bundles the web
#               console into dist/console-ui) and prunes dev dependencies; this needs the npm registry from inside
#               the build.
#               0 (offline): nothing is installed or compiled inside the build. The build context must then hold
#               a built dist/ (with dist/console-ui) and a production-only node_modules/ (matching BASE_IMAGE's platform) next to
#               package.json, package-lock.json and manifests/schemas/. The repo's .dockerignore keeps
#               node_modules and dist out of the context, so scripts/build-image.sh assembles such a context in a
#               temporary directory and builds with `--network none` (see that script).
#
# Run (the Docker socket is root-equivalent on the host: whoever controls this container controls the host):
#   docker run -d --name mcp-portal \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v "$PWD/manifests/example:/data:ro" -v mcp-portal-state:/state \
#     -p 127.0.0.1:8080:8080 mcp-portal
# The process runs as uid 1000 (not root); `--group-add <gid of the socket>` (compose: group_add) is what lets
# it talk to the Docker Engine.

ARG BASE_IMAGE=node:24-alpine

FROM ${BASE_IMAGE} AS build
# Lets scripts/build-image.sh find superseded build-stage images the classic builder leaves behind.
LABEL mcp-portal.stage=build
ARG NPM_CI=1
WORKDIR /app
COPY package.json package-lock.json ./
# Install scripts are skipped: TypeScript needs none, and the only native addons in the tree (ssh2's optional
# crypto binding, cpu-features) are optional with pure-JS fallbacks (used only for ssh:// DOCKER_HOST anyway).
RUN if [ "$NPM_CI" = "1" ]; then npm ci --ignore-scripts --no-audit --no-fund; fi
COPY . .
RUN set -e; \
    if [ "$NPM_CI" = "1" ]; then \
      npm run build; \
      npm prune --omit=dev --ignore-scripts --no-audit --no-fund; \
    else \
      for f in dist/cli.js dist/console-ui/index.html node_modules package.json manifests/schemas; do \
        [ -e "$f" ] || { echo "NPM_CI=0: the build context has no $f (build with scripts/build-image.sh)" >&2; exit 1; }; \
      done; \
      if [ -d node_modules/typescript ] || [ -d node_modules/vitest ]; then \
        echo "NPM_CI=0: node_modules holds dev dependencies; prune it first (npm prune --omit=dev)" >&2; exit 1; \
      fi; \
    fi; \
    mkdir -p /out/state

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="mcp-portal" \
      org.opencontainers.image.description="Reconciling controller that runs users' MCP servers as Docker containers from GitOps files" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production \
    MCP_PORTAL_DATA_DIR=/data \
    MCP_PORTAL_STATE_DIR=/state \
    MCP_PORTAL_LISTEN=0.0.0.0:8080
WORKDIR /app
# Code stays owned by root (read-only for the controller); only the state dir belongs to uid 1000. A named volume
# mounted at /state is initialised from this directory, ownership included.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/manifests/schemas ./manifests/schemas
COPY --from=build /app/dist ./dist
COPY --from=build --chown=1000:1000 /out/state /state
# Numeric, so orchestrators can verify runAsNonRoot; uid 1000 is `node` in node:*-alpine and in the test base.
USER 1000:1000
EXPOSE 8080
# /healthz on the port of MCP_PORTAL_LISTEN (the listener must accept connections on 127.0.0.1, as 0.0.0.0 does).
# Node itself does the request: the base images have no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const m=/:(\\d+)$/.exec(process.env.MCP_PORTAL_LISTEN||'');fetch('http://127.0.0.1:'+(m?m[1]:'8080')+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["run"]

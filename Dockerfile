# syntax=docker/dockerfile:1
# metrics-sidecar image: built JavaScript and production dependencies only, non-root, exec-form
# entrypoint so SIGTERM reaches Node and the graceful drain runs.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# A numeric UID/GID (distroless "nonroot"), so runAsNonRoot can be verified by the kubelet.
USER 65532:65532
# Main port (web role), metrics port (worker role), StatsD (UDP and TCP).
EXPOSE 8080 8491 9125/udp 9125/tcp
ENTRYPOINT ["node", "dist/main.js"]

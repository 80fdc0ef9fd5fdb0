# syntax=docker/dockerfile:1
# The MCP server image: `docker build -f docker/mcpserver.Dockerfile .` from
# the repository root (the build context must hold the whole Go workspace).
#
# Build stage: the workspace's go.work names all four modules, so every
# module's go.mod is copied first (a cached layer for `go mod download`),
# then the sources of the modules this binary is built from.
FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.work go.work.sum ./
COPY shared/go.mod shared/go.sum shared/
COPY mcpserver/go.mod mcpserver/go.sum mcpserver/
COPY webclient/go.mod webclient/go.sum webclient/
COPY scripts/go.mod scripts/go.sum scripts/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY shared/ shared/
COPY mcpserver/ mcpserver/
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w -X picard.dev/mcpserver/app.Version=${VERSION}" -o /out/mcpserver ./mcpserver/cmd/mcpserver
# The data directory (dev keys, SQLite when no database URL is set) must be
# writable by the non-root user of the runtime image, which has no shell.
RUN mkdir -p /out/data

# Runtime stage: a static binary on distroless, as user nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mcpserver /usr/local/bin/mcpserver
COPY --from=build --chown=65532:65532 /out/data /data
ENV MCP_SERVER_HOST=0.0.0.0 \
    MCP_SERVER_PORT=8001 \
    MCP_DATA_DIR=/data
WORKDIR /data
USER nonroot:nonroot
EXPOSE 8001
# The image has no shell or curl: the binary checks its own /healthz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["/usr/local/bin/mcpserver", "healthcheck"]
# serve applies pending migrations before it listens.
ENTRYPOINT ["/usr/local/bin/mcpserver"]
CMD ["serve"]

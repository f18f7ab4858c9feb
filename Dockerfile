# difyload: a Go worker for a stock Locust master (and the built-in Dify mock), as a container.
#
#   docker build -t difyload/difyload .
#   docker run --rm -e LOCUST_MASTER_NODE_HOST=master difyload/difyload          # worker
#   docker run --rm -p 5001:5001 -e DIFYLOAD_MOCK_ADDR=0.0.0.0:5001 \
#     -e DIFYLOAD_MOCK_ALLOW_NON_LOOPBACK=true difyload/difyload mock              # the mock
#
# Configuration is by environment variables only (see `difyload worker -h`): the master by
# LOCUST_MASTER_NODE_HOST/LOCUST_MASTER_NODE_PORT, the target by DIFYLOAD_HOST, the keys by
# DIFY_SIMPLE_APP_KEY, DIFY_COMPLEX_APP_KEY, DIFY_DATASET_ID, DIFY_DATASET_KEY. No key is
# baked into any layer: pass them at run time (a Kubernetes Secret, an env file).
#
# Plain Dockerfile syntax: builds with BuildKit and with the legacy builder alike.

ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
# cgo + libczmq for the ZeroMQ transport (-tags goczmq). The official golang image has gcc and
# pkg-config; libczmq-dev comes from Debian unless the build image already has it.
RUN set -eux; \
    if ! pkg-config --exists libczmq; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libczmq-dev pkg-config; \
      rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN set -eux; \
    CGO_ENABLED=1 go build -tags goczmq -trimpath -ldflags "-X main.version=${VERSION}" \
      -o /out/difyload ./cmd/difyload; \
    /out/difyload version

FROM ${RUNTIME_IMAGE}
# Only the runtime libraries: libczmq4 (pulls libzmq5) and the CA bundle for https targets.
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libczmq4 ca-certificates; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 difyload; \
    useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin difyload
COPY --from=build /out/difyload /usr/local/bin/difyload
USER 10001:10001
# 5001: `difyload mock` (set DIFYLOAD_MOCK_ADDR=0.0.0.0:5001 and DIFYLOAD_MOCK_ALLOW_NON_LOOPBACK=true)
EXPOSE 5001
ENTRYPOINT ["difyload"]
CMD ["worker"]

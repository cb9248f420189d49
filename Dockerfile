# syntax=docker/dockerfile:1
# node-healer receiver: a static Go binary on distroless, non-root.
#   docker build -t node-healer:dev .        (or: make image)
# deploy/dockerfile_test.go checks this file and builds the binary the same
# way (there is no Docker engine in CI).

# Build on the build machine's platform and cross-compile: no emulation for
# multi-arch images (docker buildx build --platform linux/amd64,linux/arm64).
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Modules first: this layer is reused until go.mod/go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
# Build information for --version and node_healer_build_info (.git is not in
# the build context: `make image` passes these from git).
ARG VERSION=unknown
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_USER=docker
ARG BUILD_DATE=unknown
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
    -ldflags="-s -w -X github.com/prometheus/common/version.Version=${VERSION} -X github.com/prometheus/common/version.Revision=${REVISION} -X github.com/prometheus/common/version.Branch=${BRANCH} -X github.com/prometheus/common/version.BuildUser=${BUILD_USER} -X github.com/prometheus/common/version.BuildDate=${BUILD_DATE}" \
    -o /out/receiver ./cmd/receiver

# No shell, no package manager, no libc: the binary is static.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=builder /out/receiver /receiver
USER 65532:65532
EXPOSE 9095
ENTRYPOINT ["/receiver"]
CMD ["serve", "--config.file=/etc/node-healer/node-healer.yml"]

# syntax=docker/dockerfile:1

# paystream image: the consumer (entrypoint) and the producer, static pure-Go binaries on a
# distroless base, running as a non-root user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t paystream:dev .
#   docker run --rm paystream:dev --version
#   docker run --rm --entrypoint /producer paystream:dev --help
#
# deploy/dockerfile_test.go parses this file and checks the base image, the user and the
# entrypoint; deploy/static_test.go runs the same `make build-static` and checks that the
# binaries are static and start.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Module downloads first, in their own layer: they change less often than the code.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The build context has no .git (see .dockerignore): the version comes from the build argument.
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    make build-static VERSION=${VERSION}

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="paystream" \
      org.opencontainers.image.description="Kinesis to Apache Iceberg consumer and payment event producer" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /src/bin/consumer /consumer
COPY --from=build /src/bin/producer /producer
# distroless "nonroot" is uid/gid 65532.
USER 65532:65532
# /metrics, /healthz, /readyz
EXPOSE 9090
ENTRYPOINT ["/consumer"]

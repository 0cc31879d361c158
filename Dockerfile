# syntax=docker/dockerfile:1
# relbot image for amd64 and arm64 (the target cluster is Raspberry Pis):
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/relbot/relbot:0.1.0 .
# The build stage runs on the build machine's platform and cross-compiles, so an
# arm64 image builds in minutes instead of under QEMU emulation.

FROM --platform=$BUILDPLATFORM rust:1.95-bookworm AS build
ARG TARGETARCH
RUN set -eux; \
    case "$TARGETARCH" in \
      amd64) echo x86_64-unknown-linux-gnu > /rust-target ;; \
      arm64) echo aarch64-unknown-linux-gnu > /rust-target; \
             apt-get update; \
             apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross; \
             rm -rf /var/lib/apt/lists/* ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    rustup target add "$(cat /rust-target)"
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin relbot --target "$(cat /rust-target)" \
 && cp "target/$(cat /rust-target)/release/relbot" /relbot

# kustomize for what relbot does not render itself (patches, generators,
# components, helmCharts…): relbot renders resources, namespace, labels,
# annotations and images natively, and hands any other kustomization to a
# `kustomize` on PATH. Pure Go, so it cross-compiles like relbot does.
FROM --platform=$BUILDPLATFORM golang:1.24-bookworm AS kustomize
ARG TARGETARCH
ARG KUSTOMIZE_VERSION=v5.7.0
RUN CGO_ENABLED=0 GOOS=linux GOARCH="$TARGETARCH" \
      go install "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}" \
 && install -m 0755 "$(find /go/bin -type f -name kustomize)" /kustomize

# distroless: glibc, CA certificates, a nonroot user (65532), no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /relbot /usr/local/bin/relbot
COPY --from=kustomize /kustomize /usr/local/bin/kustomize
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/relbot"]
CMD ["serve", "--listen", "0.0.0.0:8080"]

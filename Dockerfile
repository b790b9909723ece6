# syntax=docker/dockerfile:1
# The samlcred operator image: the binary built in a Rust image, run from a distroless base that has
# no shell or package manager, as the unprivileged user 65532. Build from the repository root:
#   docker build -t ghcr.io/samlcred/samlcred:0.1.0 .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep the crates.io downloads and the build between runs; the binary leaves the cached
# target directory by the copy, since cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin samlcred \
 && install -m 0755 target/release/samlcred /samlcred

# glibc and libgcc only: the TLS stack is rustls, so no OpenSSL is needed.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /samlcred /usr/local/bin/samlcred
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/samlcred"]
CMD ["controller"]

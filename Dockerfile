# barrage as a small static image: built against musl, shipped on scratch.
# The binary needs nothing from the image: TLS roots are compiled in
# (webpki-roots) and it links statically.
#
#   docker build -t barrage:0.1.0 .
#   docker run --rm --network host -v "$PWD/scenarios:/scenarios" barrage:0.1.0 \
#       run /scenarios/quickstart.yaml --no-tui --out /tmp/r
#
# `barrage k8s` uses this image (--image); docs/distributed.md has the path.
FROM rust:1-alpine AS build
# gcc and musl headers for ring's C and assembly parts.
RUN apk add --no-cache gcc musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
# Cargo.toml names this example; the manifest does not load without it.
COPY bench/raw_tcp.rs bench/raw_tcp.rs
RUN cargo build --release --locked --bin barrage \
 && strip target/release/barrage \
 && mkdir -p /rootfs/usr/local/bin /rootfs/tmp \
 && chmod 1777 /rootfs/tmp \
 && cp target/release/barrage /rootfs/usr/local/bin/barrage

FROM scratch
COPY --from=build /rootfs /
ENV PATH=/usr/local/bin
# The same unprivileged user the Kubernetes manifests ask for.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["barrage"]
CMD ["--help"]

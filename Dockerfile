# syntax=docker/dockerfile:1
# coconnect gateway image: release build on the official Rust image (Debian 12 "bookworm"),
# run on debian:12-slim as an unprivileged user.
#
#   docker build -t coconnect .
#   docker run --rm coconnect --help
#
# Configuration and keys are mounted at run time (see docker-compose.yml); none are in the image.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      pkg-config libssl-dev libxml2-dev libxmlsec1-dev libxmlsec1-openssl \
      libclang-dev clang iso-codes \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin coconnect \
 && install -m 0755 target/release/coconnect /usr/local/bin/coconnect

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libxmlsec1-openssl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 coconnect \
 && useradd --system --uid 10001 --gid coconnect --home-dir /var/lib/coconnect --create-home \
      --shell /usr/sbin/nologin coconnect
COPY --from=build /usr/local/bin/coconnect /usr/local/bin/coconnect
USER coconnect:coconnect
WORKDIR /var/lib/coconnect
# 8080: SOAP listener for partners; 8081: domestic API (publish it on an internal interface only).
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/coconnect"]
CMD ["serve", "--config", "/etc/coconnect/gateway.toml"]

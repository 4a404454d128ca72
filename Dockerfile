# One image per service: `docker build --build-arg SERVICE=order-service --build-arg PORT=8004 .`
# (docker-compose.yml builds all six). The builder stage compiles every binary at once
# and reads no build argument, so the six images share it: one `cargo build`, then
# each runtime stage copies its own binary. The dependency layer is built from
# cargo-chef's recipe, so it is reused until Cargo.toml or Cargo.lock change.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
# No database in the build: the SQL macros compile from the offline data in .sqlx/.
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked --workspace --bins

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# curl serves the health check; ca-certificates lets SMTP and webhooks use TLS.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin switchyard
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "set --build-arg SERVICE=<binary>" >&2; exit 1; }
COPY --from=builder /src/target/release/${SERVICE} /usr/local/bin/service
ARG PORT=8080
ENV PORT=${PORT} LOG_FORMAT=json RUST_LOG=info
EXPOSE ${PORT}
USER 10001
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
    CMD ["sh", "-c", "curl -fsS \"http://127.0.0.1:${PORT}/readyz\" >/dev/null"]
ENTRYPOINT ["/usr/local/bin/service"]

# syntax=docker/dockerfile:1
# kefu: single static-ish binary on Debian 12.
#   docker build -t kefu .
#   docker run -p 8080:8080 -v kefu-data:/data kefu

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# sqlx compile-time checks (if any) use the checked-in offline data, never a live DB.
ENV SQLX_OFFLINE=true
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release -p kefu --locked \
    && install -m 0755 target/release/kefu /usr/local/bin/kefu

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin kefu \
    && mkdir -p /data && chown kefu:kefu /data
COPY --from=builder /usr/local/bin/kefu /usr/local/bin/kefu
ENV KEFU_LISTEN=0.0.0.0:8080 \
    KEFU_DATA_DIR=/data
VOLUME /data
WORKDIR /data
USER kefu
EXPOSE 8080
# No HEALTHCHECK: the slim image has no curl/wget; orchestrators can probe :8080.
ENTRYPOINT ["kefu"]
CMD ["serve"]

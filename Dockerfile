# One image per service from one Dockerfile:
#   docker build --build-arg SERVICE=c2d-gateway -t chat2desk-events/c2d-gateway .
# SERVICE is one of c2d-gateway, c2d-crm-sync, c2d-analytics, c2d-alerting, c2d-hints, c2d-keeper,
# c2d-console, c2dctl.
#
# The build needs no system protoc (protox compiles the protos); the image holds one static-ish
# binary on distroless: no shell, no package manager, user 65532 (nonroot), and it runs with a
# read-only root filesystem (services write only to mounted volumes: analytics' snapshots,
# crm-sync's SQLite file).

FROM rust:1.91-bookworm AS build
WORKDIR /src
COPY . .
ARG SERVICE=c2d-gateway
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p "${SERVICE}" --bin "${SERVICE}" \
    && mkdir -p /out && cp "target/release/${SERVICE}" /out/service

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/service /usr/local/bin/service
USER 65532:65532
ENV LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/service"]

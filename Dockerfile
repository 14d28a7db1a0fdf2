# The image of every gpuledger component (deploy/helm): /usr/local/bin/gpuledger,
# the suite (aggregator, API, reports), and /usr/local/bin/gpuledger-exporter,
# the exporter alone (the DaemonSet's and the cluster exporter's command).
#
#   docker build -t ghcr.io/gpuledger/gpuledger:$(git describe --tags --always) .
#
# Built with cgo against glibc: go-nvml loads libnvidia-ml.so.1 at run time,
# from the driver the NVIDIA container runtime mounts into the exporter's pod,
# so the runtime image is Debian (glibc), not scratch or Alpine (musl).
# deploy/deploy_test.go checks this file against the chart and the Makefile.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
RUN make build VERSION=$VERSION REVISION=$REVISION BRANCH=$BRANCH

FROM debian:bookworm-slim
# ca-certificates: the API fetches the OIDC issuer's discovery document and
# keys over HTTPS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/bin/gpuledger /src/bin/gpuledger-exporter /usr/local/bin/
# The chart's pods set their own user (the node exporter runs as root for
# the kubelet's socket); alone, the image runs unprivileged.
USER 65532:65532
ENTRYPOINT ["gpuledger"]

# nats-server from Debian's package, for the container tests (make test-containers) where no registry but
# Debian's is reachable; Kubernetes runs the upstream nats image (deploy/k8s/nats.yaml) with the same config.
ARG BASE=debian:trixie-slim
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
USER 10001:10001
ENTRYPOINT ["nats-server"]

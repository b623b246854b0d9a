# syntax=docker/dockerfile:1
# The image the Helm chart (charts/egress-tunnel) runs: both shaded jars on a Java 17 runtime.
# It compiles inside, so a fresh clone builds with nothing but Docker (BuildKit), from the
# repository root:
#   docker build -t egress-tunnel:dev .
# The build stage downloads the Maven dependencies (Maven Central); a BuildKit cache keeps them
# between builds.
#
# Base images: exact version tags, pinned by the digests that the Docker Official Images record
# (docker-library/repo-info) gave for these tags in September 2026. They were not checked against
# the registry when written. To check them, or to move to newer images, see the digest a tag has
# now and put it after the tag:
#   docker buildx imagetools inspect maven:3.9.16-eclipse-temurin-17-noble
#   docker buildx imagetools inspect eclipse-temurin:17.0.20_8-jre-noble
# (the "Digest:" line of the index). Both can be overridden: --build-arg BUILD_IMAGE=...,
# --build-arg RUNTIME_IMAGE=....
ARG BUILD_IMAGE=maven:3.9.16-eclipse-temurin-17-noble@sha256:42a3ac393abbc64dae6c96703e5ead2e921fe9103371ac58b5b404b0d6a26502
ARG RUNTIME_IMAGE=eclipse-temurin:17.0.20_8-jre-noble@sha256:76bf6d763e84e4d286d5ee3df61e4adeca214977f83c7d8d2327b93db582dd9d

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# The reactor reads every module's pom; only the four modules the jars need are compiled.
COPY pom.xml ./
COPY bench/pom.xml bench/
COPY charts/pom.xml charts/
COPY proto proto
COPY routing routing
COPY tunnel-server tunnel-server
COPY tunnel-agent tunnel-agent
RUN --mount=type=cache,target=/root/.m2 \
    mvn -B -q package -DskipTests -Dspotless.check.skip=true -pl tunnel-server,tunnel-agent -am

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="egress-tunnel" \
      org.opencontainers.image.description="The kube-apiserver's egress selector proxy: tunnel-server (HTTP CONNECT and Konnectivity GRPC) and tunnel-agent (one per node)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/egress-tunnel/egress-tunnel"
COPY --from=build /src/tunnel-server/target/tunnel-server.jar /src/tunnel-agent/target/tunnel-agent.jar /opt/egress-tunnel/
# The chart runs both as this user too, with a read-only root filesystem and /tmp on an emptyDir
# (Netty unpacks its native transport there). Its server init container runs `chown` from this
# image (coreutils).
USER 65532:65532
CMD ["java", "-jar", "/opt/egress-tunnel/tunnel-server.jar", "--help"]

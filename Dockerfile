# The image the Helm chart (charts/egress-tunnel) runs: both shaded jars on a Java 17 runtime.
# Build the jars first, then the image, from the repository root:
#   mvn -B -q package -DskipTests -pl tunnel-server,tunnel-agent -am
#   docker build -t ghcr.io/egress-tunnel/egress-tunnel:0.1.0 .
# The chart's server init container runs `chown` from this image (coreutils).
FROM eclipse-temurin:17-jre
COPY tunnel-server/target/tunnel-server.jar tunnel-agent/target/tunnel-agent.jar /opt/egress-tunnel/
# The chart runs both as this user too, with a read-only root filesystem and /tmp on an emptyDir
# (Netty unpacks its native transport there).
USER 65532:65532
CMD ["java", "-jar", "/opt/egress-tunnel/tunnel-server.jar", "--help"]

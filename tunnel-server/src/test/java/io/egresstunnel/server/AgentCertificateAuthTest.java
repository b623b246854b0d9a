package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.EgressMode;
import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Agents that authenticate with a client certificate whose subject names their node ({@code
 * CN=system:node:NAME}, --agent-client-ca): each may speak for its own node only.
 */
class AgentCertificateAuthTest {
  private static final String TOKEN = "a-static-agent-token-0123456789";

  private static X509Bundle ca;
  private static X509Bundle serverCert;
  private static X509Bundle nodeA;
  private static X509Bundle notANode;

  @BeforeAll
  static void certificates() throws Exception {
    ca =
        new CertificateBuilder()
            .subject("CN=agents CA")
            .setIsCertificateAuthority(true)
            .ecp256()
            .buildSelfSigned();
    serverCert =
        new CertificateBuilder()
            .subject("CN=tunnel-server")
            .addSanIpAddress("127.0.0.1")
            .addExtendedKeyUsageServerAuth()
            .ecp256()
            .buildIssuedBy(ca);
    nodeA = client("CN=system:node:node-a, O=system:nodes");
    notANode = client("CN=kube-apiserver");
  }

  private static X509Bundle client(String subject) throws Exception {
    return new CertificateBuilder()
        .subject(subject)
        .addExtendedKeyUsageClientAuth()
        .ecp256()
        .buildIssuedBy(ca);
  }

  /** A wss server that admits node certificates, and with {@code tokens} also a token file. */
  private static TunnelServer server(Path dir, boolean tokens) throws Exception {
    ServerConfig base =
        ServerConfig.plain(
                EgressMode.AGENT,
                new InetSocketAddress("127.0.0.1", 0),
                new InetSocketAddress("127.0.0.1", 0))
            .withTls(
                null,
                new ServerConfig.TlsFiles(
                    TlsClient.replace(dir.resolve("s.crt"), serverCert.getCertificatePathPEM()),
                    TlsClient.replace(dir.resolve("s.key"), serverCert.getPrivateKeyPEM()),
                    null));
    Path tokenFile = tokens ? Files.writeString(dir.resolve("tokens"), TOKEN + "\n") : null;
    Path clientCa = TlsClient.replace(dir.resolve("agents-ca.crt"), ca.getRootCertificatePEM());
    return new TunnelServer(
            base.withSecurity(
                base.security()
                    .withAgentAuth(new ServerConfig.AgentAuth(tokenFile, clientCa, null))))
        .start();
  }

  private static String upgrade(TunnelServer server, X509Bundle cert, String token, String node)
      throws Exception {
    TrustManager[] trust = ca.toTrustManagerFactory().getTrustManagers();
    try (SSLSocket s =
        TlsClient.open(
            server.agentAddress(),
            cert == null ? null : cert.toKeyManagerFactory().getKeyManagers(),
            trust)) {
      return AgentAuthenticationTest.upgrade(s, token, node);
    }
  }

  @Test
  void aNodeCertificateSpeaksForItsNodeOnly(@TempDir Path dir) throws Exception {
    try (TunnelServer server = server(dir, false)) {
      assertThat(upgrade(server, nodeA, null, "node-a")).startsWith("HTTP/1.1 101");
      // The certificate names the node when the agent does not.
      assertThat(upgrade(server, nodeA, null, null)).startsWith("HTTP/1.1 101");
      assertThat(upgrade(server, nodeA, null, "node-b"))
          .startsWith("HTTP/1.1 403")
          .containsIgnoringCase("X-Egress-Tunnel-Refusal: wrong_node\r\n")
          .contains("the client certificate is for node node-a, not node-b");
      assertThat(upgrade(server, notANode, null, "node-a"))
          .startsWith("HTTP/1.1 403")
          .containsIgnoringCase("X-Egress-Tunnel-Refusal: bad_certificate\r\n")
          .contains("the client certificate CN=kube-apiserver does not name a node");
      MetricsTest.Scrape metrics = MetricsTest.Scrape.of(server.metrics().registry());
      String refused = "egress_tunnel_server_agent_upgrades_refused_total";
      assertThat(metrics.get(refused, "code", "403", "reason", "wrong_node")).isEqualTo(1);
      assertThat(metrics.get(refused, "code", "403", "reason", "bad_certificate")).isEqualTo(1);
      // With certificates the only way in, the TLS handshake itself demands one.
      assertThatThrownBy(() -> upgrade(server, null, null, "node-a"))
          .isInstanceOf(IOException.class);
      assertThat(server.registry().agentCount()).isZero();
    }
  }

  @Test
  void withATokenFileTooACertificateIsOptional(@TempDir Path dir) throws Exception {
    try (TunnelServer server = server(dir, true)) {
      assertThat(upgrade(server, null, TOKEN, "node-z")).startsWith("HTTP/1.1 101");
      assertThat(upgrade(server, null, null, "node-z"))
          .startsWith("HTTP/1.1 401")
          .contains("a node client certificate or a bearer token is required");
      assertThat(upgrade(server, nodeA, null, "node-a")).startsWith("HTTP/1.1 101");
    }
  }

  @Test
  void realAgentsWithCertificatesConnectOnlyForTheirNode(@TempDir Path dir) throws Exception {
    try (TunnelServer server = server(dir, false)) {
      URI url = URI.create("wss://127.0.0.1:" + server.agentAddress().getPort());
      Path caFile = TlsClient.replace(dir.resolve("ca.crt"), ca.getRootCertificatePEM());
      AgentConfig.Credentials certA =
          new AgentConfig.Credentials(
              null,
              TlsClient.replace(dir.resolve("a.crt"), nodeA.getCertificatePathPEM()),
              TlsClient.replace(dir.resolve("a.key"), nodeA.getPrivateKeyPEM()));
      AgentConfig a =
          AgentConfig.simple(
                  url, "node-a", List.of(Cidr.parseAddress("127.0.9.1")), EgressMode.AGENT)
              .withCredentials(caFile, certA);
      // node-b borrows node-a's certificate.
      AgentConfig impostor =
          AgentConfig.simple(
                  url, "node-b", List.of(Cidr.parseAddress("127.0.9.2")), EgressMode.AGENT)
              .withCredentials(caFile, certA);
      try (TunnelAgent good = new TunnelAgent(a).start();
          TunnelAgent bad = new TunnelAgent(impostor).start()) {
        await()
            .atMost(Duration.ofSeconds(20))
            .until(() -> server.registry().session("node-a") != null);
        await()
            .during(Duration.ofSeconds(1))
            .atMost(Duration.ofSeconds(5))
            .until(() -> server.registry().agentCount() == 1);
        assertThat(good.sessions()).hasSize(1);
        assertThat(bad.sessions()).isEmpty();
        // The impostor is told why, over wss too.
        await().atMost(Duration.ofSeconds(20)).until(() -> bad.lastRefusal() != null);
        assertThat(bad.lastRefusal().toString())
            .isEqualTo("403 wrong_node: the client certificate is for node node-a, not node-b");
        assertThat(good.lastRefusal()).isNull();
      }
    }
  }
}

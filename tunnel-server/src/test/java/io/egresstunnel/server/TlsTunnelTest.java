package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.EgressMode;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The production shape: the apiserver speaks CONNECT over TLS with its client certificate
 * (--tls-cert/--tls-key/--client-ca), and the agent connects with wss:// (--agent-tls-cert, agent
 * --ca-cert). A client without a certificate, or with one from another CA, gets no tunnel.
 */
class TlsTunnelTest {
  private static X509Bundle ca;
  private static X509Bundle apiserver;
  private static X509Bundle stranger;
  private static TunnelServer server;
  private static TunnelAgent agent;
  private static TestTarget echo;

  @BeforeAll
  static void start() throws Exception {
    ca = TestPki.ca("CN=egress-tunnel test CA");
    X509Bundle serverCert = TestPki.server(ca);
    apiserver = TestPki.client(ca, "CN=kube-apiserver");
    stranger = TestPki.client(TestPki.ca("CN=other CA"), "CN=kube-apiserver");
    ServerConfig.TlsFiles connectTls = TestPki.serverFiles(serverCert, ca);
    ServerConfig.TlsFiles agentTls = TestPki.serverFiles(serverCert, null);
    ServerConfig plain =
        ServerConfig.plain(
            EgressMode.POD,
            new InetSocketAddress("127.0.0.1", 0),
            new InetSocketAddress("127.0.0.1", 0));
    server = new TunnelServer(plain.withTls(connectTls, agentTls)).start();
    AgentConfig simple =
        AgentConfig.simple(
                URI.create("wss://127.0.0.1:" + server.agentAddress().getPort()),
                "node-tls",
                List.of(Cidr.parseAddress("127.0.4.1")),
                EgressMode.POD)
            .withPodCidrs(List.of(Cidr.parse("127.4.1.0/24")));
    agent =
        new TunnelAgent(
                simple.withCredentials(
                    ca.toTempRootCertPem().toPath(), AgentConfig.Credentials.NONE))
            .start();
    await()
        .atMost(Duration.ofSeconds(20))
        .until(() -> server.registry().session("node-tls") != null);
    echo = new TestTarget("127.4.1.10", 0, TestTarget::echo);
  }

  @AfterAll
  static void stop() throws Exception {
    echo.close();
    agent.close();
    server.close();
  }

  @Test
  void apiserverWithItsClientCertificateGetsATunnelOverWss() throws Exception {
    try (SSLSocket s = tlsSocket(apiserver.toKeyManagerFactory().getKeyManagers())) {
      OutputStream out = s.getOutputStream();
      out.write(ConnectClient.apiserverRequest("127.4.1.10:" + echo.port()));
      out.flush();
      InputStream in = s.getInputStream();
      byte[] head = in.readNBytes(39);
      assertThat(new String(head, StandardCharsets.US_ASCII))
          .isEqualTo("HTTP/1.1 200 Connection established\r\n\r\n");
      Transfers.Result r = TlsClient.echoThrough(s, 4 << 20);
      assertThat(r.receivedSha()).isEqualTo(r.sentSha());
    }
  }

  /**
   * A client may send its first bytes right behind the CONNECT, and end its side, before the 200.
   * Over TLS they come in records of their own, which TLS hands on one at a time: the HTTP decoder
   * must keep them as bytes for the relay, not read them as a next request. The relay then sends
   * what one read brings together: a frame per record would be 8 frames or more for these 128 KiB.
   */
  @Test
  void bytesRightBehindTheConnectArriveWholeAndInFewFrames() throws Exception {
    byte[] data = new byte[128 * 1024];
    new java.util.Random(16).nextBytes(data);
    double framesBefore = dataFramesSent();
    try (SSLSocket s = tlsSocket(apiserver.toKeyManagerFactory().getKeyManagers())) {
      OutputStream out = s.getOutputStream();
      out.write(ConnectClient.apiserverRequest("127.4.1.10:" + echo.port()));
      out.flush();
      out.write(data);
      out.flush();
      s.shutdownOutput(); // close_notify, then FIN: the end comes after the bytes, all before
      // the 200
      InputStream in = s.getInputStream();
      assertThat(new String(in.readNBytes(39), StandardCharsets.US_ASCII))
          .isEqualTo("HTTP/1.1 200 Connection established\r\n\r\n");
      assertThat(in.readNBytes(data.length)).isEqualTo(data);
      assertThat(in.read()).as("the target's end, after the echo").isEqualTo(-1);
    }
    assertThat(dataFramesSent() - framesBefore).isBetween(1.0, 4.0);
  }

  /** DATA frames the server has sent to agents so far, from its metrics. */
  private static double dataFramesSent() throws IOException {
    return MetricsTest.Scrape.of(server.metrics().registry())
        .get("egress_tunnel_server_frames_total", "direction", "sent", "type", "data");
  }

  @Test
  void clientWithoutACertificateIsRefused() {
    assertThatThrownBy(() -> handshakeAndConnect(null)).isInstanceOf(IOException.class);
  }

  @Test
  void clientWithACertificateFromAnotherCaIsRefused() {
    assertThatThrownBy(() -> handshakeAndConnect(stranger.toKeyManagerFactory().getKeyManagers()))
        .isInstanceOf(IOException.class);
  }

  /** TLS 1.3 lets a refused client certificate surface only at the first read. */
  private static void handshakeAndConnect(KeyManager[] keys) throws Exception {
    try (SSLSocket s = tlsSocket(keys)) {
      s.getOutputStream().write(ConnectClient.apiserverRequest("127.4.1.10:" + echo.port()));
      s.getOutputStream().flush();
      if (s.getInputStream().read() < 0) {
        throw new IOException("closed without an answer");
      }
    }
  }

  private static SSLSocket tlsSocket(KeyManager[] keys) throws Exception {
    return TlsClient.open(
        server.connectAddress(), keys, ca.toTrustManagerFactory().getTrustManagers());
  }
}

package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.proto.net.TlsOptions;
import io.egresstunnel.routing.EgressMode;
import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.function.UnaryOperator;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * TLS on the CONNECT listener. Certificates, keys and the client CA are rotated by replacing their
 * files: new connections see the new ones, a stream opened before the rotation carries on
 * untouched. Versions and suites can be restricted, and so can the client certificates' names.
 */
class TlsRotationTest {
  private static X509Bundle ca(String name) throws Exception {
    return new CertificateBuilder()
        .subject("CN=" + name)
        .setIsCertificateAuthority(true)
        .ecp256()
        .buildSelfSigned();
  }

  private static X509Bundle serverCert(String name, X509Bundle ca) throws Exception {
    return new CertificateBuilder()
        .subject("CN=" + name)
        .addSanIpAddress("127.0.0.1")
        .addExtendedKeyUsageServerAuth()
        .ecp256()
        .buildIssuedBy(ca);
  }

  private static X509Bundle clientCert(X509Bundle ca) throws Exception {
    return new CertificateBuilder()
        .subject("CN=kube-apiserver")
        .addExtendedKeyUsageClientAuth()
        .ecp256()
        .buildIssuedBy(ca);
  }

  /** The server's certificate and key and the client CA, written as files into {@code dir}. */
  private static ServerConfig.TlsFiles tlsFiles(Path dir, X509Bundle server, X509Bundle clientCa)
      throws Exception {
    return new ServerConfig.TlsFiles(
        TlsClient.replace(dir.resolve("server.crt"), server.getCertificatePathPEM()),
        TlsClient.replace(dir.resolve("server.key"), server.getPrivateKeyPEM()),
        TlsClient.replace(dir.resolve("client-ca.crt"), clientCa.getRootCertificatePEM()));
  }

  /** A server dialling directly, with TLS on its CONNECT listener and {@code security} applied. */
  private static ServerConfig tlsServer(
      ServerConfig.TlsFiles files, UnaryOperator<ServerConfig.Security> security) {
    ServerConfig base =
        ServerConfig.plain(
            EgressMode.DISABLED,
            new InetSocketAddress("127.0.0.1", 0),
            new InetSocketAddress("127.0.0.1", 0));
    return base.withTls(files, null).withSecurity(security.apply(base.security()));
  }

  @Test
  void rotationReachesNewConnectionsAndLeavesOpenStreamsAlone(@TempDir Path dir) throws Exception {
    X509Bundle ca1 = ca("CA one");
    X509Bundle ca2 = ca("CA two");
    X509Bundle client1 = clientCert(ca1);
    X509Bundle client2 = clientCert(ca2);
    X509Bundle one = serverCert("server-one", ca1);
    ServerConfig.TlsFiles files = tlsFiles(dir, one, ca1);
    Path cert = files.cert();
    Path key = files.key();
    Path clientCa = files.clientCa();
    ServerConfig config =
        tlsServer(
            files,
            s -> s.withTls(TlsOptions.defaults().withReloadInterval(Duration.ofMillis(100))));
    TrustManager[] trustBoth = trust(ca1, ca2);
    try (TunnelServer server = new TunnelServer(config).start();
        TestTarget echo = new TestTarget("127.0.0.1", 0, TestTarget::echo)) {
      String target = "127.0.0.1:" + echo.port();
      try (SSLSocket before =
          TlsClient.open(
              server.connectAddress(), client1.toKeyManagerFactory().getKeyManagers(), trustBoth)) {
        assertThat(TlsClient.serverSubject(before)).isEqualTo("CN=server-one");
        assertThat(TlsClient.connect(before, target)).startsWith("HTTP/1.1 200");
        Transfers.Result first = TlsClient.echoThrough(before, 2 << 20);
        assertThat(first.receivedSha()).isEqualTo(first.sentSha());

        // Rotate everything: a server certificate from CA two, and CA two for clients.
        X509Bundle two = serverCert("server-two", ca2);
        TlsClient.replace(key, two.getPrivateKeyPEM());
        TlsClient.replace(cert, two.getCertificatePathPEM());
        TlsClient.replace(clientCa, ca2.getRootCertificatePEM());

        await()
            .atMost(Duration.ofSeconds(20))
            .ignoreExceptions()
            .until(() -> subjectSeenBy(server, client2, trustBoth).equals("CN=server-two"));
        // A client of the old CA is now refused; one of the new CA gets its tunnel.
        assertThatThrownBy(() -> connectWith(server, client1, trustBoth, target))
            .isInstanceOf(IOException.class);
        try (SSLSocket after =
            TlsClient.open(
                server.connectAddress(),
                client2.toKeyManagerFactory().getKeyManagers(),
                trustBoth)) {
          assertThat(TlsClient.connect(after, target)).startsWith("HTTP/1.1 200");
          Transfers.Result r = TlsClient.echoThrough(after, 1 << 20);
          assertThat(r.receivedSha()).isEqualTo(r.sentSha());
        }

        // The stream opened before the rotation still carries bytes, on its old certificate.
        Transfers.Result second = TlsClient.echoThrough(before, 8 << 20);
        assertThat(second.receivedSha()).isEqualTo(second.sentSha());
        assertThat(TlsClient.serverSubject(before)).isEqualTo("CN=server-one");
      }
    }
  }

  @Test
  void aBrokenReplacementKeepsTheOldCertificateServing(@TempDir Path dir) throws Exception {
    X509Bundle ca = ca("CA");
    X509Bundle one = serverCert("server-one", ca);
    ServerConfig.TlsFiles files = tlsFiles(dir, one, ca);
    Path key = files.key();
    ServerConfig config =
        tlsServer(
            files, s -> s.withTls(TlsOptions.defaults().withReloadInterval(Duration.ofMillis(50))));
    X509Bundle client = clientCert(ca);
    try (TunnelServer server = new TunnelServer(config).start()) {
      TlsClient.replace(key, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
      // Several poll intervals pass; every new connection still gets the old, working certificate.
      await()
          .during(Duration.ofMillis(500))
          .atMost(Duration.ofSeconds(10))
          .until(() -> subjectSeenBy(server, client, trust(ca)).equals("CN=server-one"));
    }
  }

  @Test
  void tls13OnlyRefusesTls12Clients(@TempDir Path dir) throws Exception {
    X509Bundle ca = ca("CA");
    X509Bundle one = serverCert("server-one", ca);
    ServerConfig config =
        tlsServer(
            tlsFiles(dir, one, ca),
            s -> s.withTls(new TlsOptions(TlsOptions.TLS13, List.of(), Duration.ofSeconds(10))));
    X509Bundle client = clientCert(ca);
    try (TunnelServer server = new TunnelServer(config).start()) {
      assertThatThrownBy(
              () -> {
                try (SSLSocket s =
                    TlsClient.open(
                        server.connectAddress(),
                        client.toKeyManagerFactory().getKeyManagers(),
                        trust(ca),
                        "TLSv1.2")) {
                  s.getInputStream().read();
                }
              })
          .isInstanceOf(SSLHandshakeException.class);
      try (SSLSocket s =
          TlsClient.open(
              server.connectAddress(),
              client.toKeyManagerFactory().getKeyManagers(),
              trust(ca),
              "TLSv1.3")) {
        assertThat(s.getSession().getProtocol()).isEqualTo("TLSv1.3");
      }
    }
  }

  @Test
  void cipherSuitesCanBeRestrictedAndUnknownOnesAreNamed(@TempDir Path dir) throws Exception {
    assertThatThrownBy(
            () ->
                new TlsOptions(
                    TlsOptions.TLS12, List.of("TLS_NO_SUCH_SUITE"), Duration.ofSeconds(1)))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("TLS_NO_SUCH_SUITE");
    X509Bundle ca = ca("CA");
    X509Bundle one = serverCert("server-one", ca);
    String only = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384";
    ServerConfig config =
        tlsServer(
            tlsFiles(dir, one, ca),
            s ->
                s.withTls(new TlsOptions(TlsOptions.TLS12, List.of(only), Duration.ofSeconds(10))));
    X509Bundle client = clientCert(ca);
    try (TunnelServer server = new TunnelServer(config).start();
        SSLSocket s =
            TlsClient.open(
                server.connectAddress(),
                client.toKeyManagerFactory().getKeyManagers(),
                trust(ca),
                null)) {
      assertThat(s.getSession().getProtocol()).isEqualTo("TLSv1.2");
      assertThat(s.getSession().getCipherSuite()).isEqualTo(only);
    }
  }

  /**
   * The agent listener runs on BoringSSL (netty-tcnative), the CONNECT listener on the JDK's engine
   * (it keeps a TLS half-close open; see TlsOptions.Carries); both honour the same versions and
   * suites.
   */
  @Test
  void theAgentListenerRunsOnBoringSslWithTheConfiguredSuitesAndVersions(@TempDir Path dir)
      throws Exception {
    assertThat(TlsOptions.engine(TlsOptions.Carries.TUNNEL))
        .as("netty-tcnative loads here (%s)", io.netty.handler.ssl.OpenSsl.unavailabilityCause())
        .startsWith("BoringSSL");
    assertThat(TlsOptions.engine(TlsOptions.Carries.CLIENT_STREAM)).isEqualTo("JDK");
    X509Bundle ca = ca("CA");
    ServerConfig.TlsFiles withCa = tlsFiles(dir, serverCert("server-one", ca), ca);
    // no agent client CA: agents would authenticate with a token
    ServerConfig.TlsFiles files = new ServerConfig.TlsFiles(withCa.cert(), withCa.key(), null);
    String only = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384";
    ServerConfig base =
        ServerConfig.plain(
                EgressMode.DISABLED,
                new InetSocketAddress("127.0.0.1", 0),
                new InetSocketAddress("127.0.0.1", 0))
            .withTls(null, files);
    ServerConfig restricted =
        base.withSecurity(
            base.security()
                .withTls(new TlsOptions(TlsOptions.TLS12, List.of(only), Duration.ofSeconds(10))));
    try (TunnelServer server = new TunnelServer(restricted).start();
        SSLSocket s = TlsClient.open(server.agentAddress(), null, trust(ca))) {
      assertThat(s.getSession().getProtocol()).isEqualTo("TLSv1.2");
      assertThat(s.getSession().getCipherSuite()).isEqualTo(only);
    }
    ServerConfig tls13 =
        base.withSecurity(
            base.security()
                .withTls(new TlsOptions(TlsOptions.TLS13, List.of(), Duration.ofSeconds(10))));
    try (TunnelServer server = new TunnelServer(tls13).start()) {
      assertThatThrownBy(
              () -> {
                try (SSLSocket s =
                    TlsClient.open(server.agentAddress(), null, trust(ca), "TLSv1.2")) {
                  s.getInputStream().read();
                }
              })
          .isInstanceOf(javax.net.ssl.SSLException.class);
      try (SSLSocket s = TlsClient.open(server.agentAddress(), null, trust(ca), "TLSv1.3")) {
        assertThat(s.getSession().getProtocol()).isEqualTo("TLSv1.3");
      }
    }
  }

  @Test
  void onlyAllowedClientNamesGetATunnel(@TempDir Path dir) throws Exception {
    X509Bundle ca = ca("CA");
    X509Bundle one = serverCert("server-one", ca);
    // One CA signs both the apiserver's certificate and an agent's (as `certs` does).
    X509Bundle agent =
        new CertificateBuilder()
            .subject("CN=system:node:node-a, O=system:nodes")
            .addExtendedKeyUsageClientAuth()
            .ecp256()
            .buildIssuedBy(ca);
    ServerConfig config =
        tlsServer(tlsFiles(dir, one, ca), s -> s.withClientAllowedNames(List.of("kube-apiserver")));
    try (TunnelServer server = new TunnelServer(config).start();
        TestTarget echo = new TestTarget("127.0.0.1", 0, TestTarget::echo)) {
      String target = "127.0.0.1:" + echo.port();
      try (SSLSocket s =
          TlsClient.open(
              server.connectAddress(), agent.toKeyManagerFactory().getKeyManagers(), trust(ca))) {
        assertThat(TlsClient.connect(s, target))
            .startsWith("HTTP/1.1 403")
            .contains("content-length");
      }
      try (SSLSocket s =
          TlsClient.open(
              server.connectAddress(),
              clientCert(ca).toKeyManagerFactory().getKeyManagers(),
              trust(ca))) {
        assertThat(TlsClient.connect(s, target)).startsWith("HTTP/1.1 200");
        Transfers.Result r = TlsClient.echoThrough(s, 1 << 20);
        assertThat(r.receivedSha()).isEqualTo(r.sentSha());
      }
    }
  }

  private static String subjectSeenBy(TunnelServer server, X509Bundle client, TrustManager[] trust)
      throws Exception {
    try (SSLSocket s =
        TlsClient.open(
            server.connectAddress(), client.toKeyManagerFactory().getKeyManagers(), trust)) {
      return TlsClient.serverSubject(s);
    }
  }

  /** TLS 1.3 lets a refused client certificate surface only at the first read. */
  private static void connectWith(
      TunnelServer server, X509Bundle client, TrustManager[] trust, String target)
      throws Exception {
    try (SSLSocket s =
        TlsClient.open(
            server.connectAddress(), client.toKeyManagerFactory().getKeyManagers(), trust)) {
      TlsClient.connect(s, target);
    }
  }

  private static TrustManager[] trust(X509Bundle... cas) throws Exception {
    java.security.KeyStore ks = java.security.KeyStore.getInstance("PKCS12");
    ks.load(null, null);
    for (int i = 0; i < cas.length; i++) {
      ks.setCertificateEntry("ca" + i, cas[i].getRootCertificate());
    }
    javax.net.ssl.TrustManagerFactory tmf =
        javax.net.ssl.TrustManagerFactory.getInstance(
            javax.net.ssl.TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(ks);
    return tmf.getTrustManagers();
  }
}

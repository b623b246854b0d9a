package io.egresstunnel.server.certs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.ServerConfig;
import io.egresstunnel.server.TunnelServer;
import io.egresstunnel.server.TunnelServerMain;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.math.BigInteger;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.yaml.snakeyaml.Yaml;
import picocli.CommandLine;

/**
 * {@code tunnel-server certs}: the files it writes, what the certificates say, that it never
 * overwrites by accident and reuses its CA, and that a server and an apiserver set up with its
 * files complete an mTLS handshake and carry a CONNECT, while a certificate of another CA is
 * refused.
 */
class CertsCommandTest {
  private static final String SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
  private static final String CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

  @TempDir Path tmp;

  record Run(int exit, String out, String err) {}

  /** Runs {@code tunnel-server ARGS} through the real command line, subcommand included. */
  private static Run tunnelServer(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    CommandLine cl = TunnelServerMain.commandLine(new TunnelServerMain(), Map.of());
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    int exit = cl.execute(args);
    return new Run(exit, out.toString(), err.toString());
  }

  private static Run certs(Path dir, String... args) {
    List<String> all = new ArrayList<>(List.of("certs", "--dir", dir.toString()));
    all.addAll(Arrays.asList(args));
    return tunnelServer(all.toArray(String[]::new));
  }

  private static Run certsForLoopback(Path dir, String... more) {
    List<String> args =
        new ArrayList<>(List.of("--server-san", "127.0.0.1", "--server-san", "localhost"));
    args.addAll(Arrays.asList(more));
    Run r = certs(dir, args.toArray(String[]::new));
    assertThat(r.exit()).as(r.err()).isZero();
    return r;
  }

  private static X509Certificate cert(Path dir, String name) throws Exception {
    return Pki.readCertificate(dir.resolve(name));
  }

  @Test
  void helpExplainsEveryFlag() {
    Run r = tunnelServer("certs", "--help");
    assertThat(r.exit()).isZero();
    for (String flag :
        List.of(
            "--dir",
            "--server-san",
            "--node",
            "--apiserver-cn",
            "--validity",
            "--ca-validity",
            "--connect-port",
            "--uds",
            "--force")) {
      assertThat(r.out()).contains(flag);
    }
    assertThat(r.out()).contains("365d").contains("3650d").contains("kube-apiserver");
    assertThat(tunnelServer("--help").out()).contains("certs");
  }

  @Test
  void missingRequiredFlagsAreUsageErrors() {
    assertThat(tunnelServer("certs", "--server-san", "localhost").exit()).isEqualTo(2);
    assertThat(certs(tmp).exit()).isEqualTo(2);
  }

  @Test
  void writesEveryFileWithItsMode() throws Exception {
    Run r = certsForLoopback(tmp, "--node", "node-a", "--node", "node-b");
    List<String> keys =
        List.of("ca.key", "server.key", "apiserver.key", "agent-node-a.key", "agent-node-b.key");
    List<String> others =
        List.of(
            "ca.crt",
            "server.crt",
            "apiserver.crt",
            "agent-node-a.crt",
            "agent-node-b.crt",
            "egress-selector-tcp.yaml",
            "egress-selector-uds.yaml",
            "egress-selector-grpc-uds.yaml");
    for (String k : keys) {
      assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(tmp.resolve(k))))
          .as(k)
          .isEqualTo("rw-------");
      assertThat(Files.readString(tmp.resolve(k)))
          .startsWith("-----BEGIN PRIVATE KEY-----\n")
          .contains("-----END PRIVATE KEY-----");
      assertThat(r.out()).contains(tmp.resolve(k).toString());
    }
    for (String f : others) {
      assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(tmp.resolve(f))))
          .as(f)
          .isEqualTo("rw-r--r--");
      assertThat(r.out()).contains(tmp.resolve(f).toString());
    }
    try (var listing = Files.list(tmp)) {
      assertThat(listing.map(p -> p.getFileName().toString()))
          .as("nothing else, no temporary files left behind")
          .containsExactlyInAnyOrderElementsOf(
              java.util.stream.Stream.concat(keys.stream(), others.stream()).toList());
    }
    assertThat(r.out())
        .contains("Created a new CA")
        .contains("--tls-cert " + tmp.resolve("server.crt"))
        .contains("--client-ca " + tmp.resolve("ca.crt"))
        .contains("--client-allowed-names kube-apiserver")
        .contains("--agent-tls-key " + tmp.resolve("server.key"))
        .contains("--agent-client-ca " + tmp.resolve("ca.crt"))
        .contains("--cert " + tmp.resolve("agent-node-b.crt"))
        .contains("--key " + tmp.resolve("agent-node-b.key"));
  }

  @Test
  void certificatesSayWhatEachIsFor() throws Exception {
    certsForLoopback(
        tmp, "--server-san", "tunnel.example.com", "--node", "node-a", "--validity", "8760h");
    X509Certificate ca = cert(tmp, "ca.crt");
    assertThat(ca.getBasicConstraints()).isGreaterThanOrEqualTo(0);
    assertThat(ca.getCriticalExtensionOIDs()).contains("2.5.29.19", "2.5.29.15");
    boolean[] caUsage = ca.getKeyUsage();
    assertThat(caUsage[5]).as("keyCertSign").isTrue();
    assertThat(caUsage[6]).as("cRLSign").isTrue();
    assertThat(ca.getSubjectX500Principal()).isEqualTo(ca.getIssuerX500Principal());
    ca.verify(ca.getPublicKey());
    assertThat(Duration.between(ca.getNotBefore().toInstant(), ca.getNotAfter().toInstant()))
        .isEqualTo(Duration.ofDays(3650).plus(Pki.BACKDATE));

    X509Certificate server = cert(tmp, "server.crt");
    X509Certificate apiserver = cert(tmp, "apiserver.crt");
    X509Certificate agent = cert(tmp, "agent-node-a.crt");
    for (X509Certificate leaf : List.of(server, apiserver, agent)) {
      leaf.verify(ca.getPublicKey());
      assertThat(leaf.getIssuerX500Principal()).isEqualTo(ca.getSubjectX500Principal());
      assertThat(leaf.getBasicConstraints()).isEqualTo(-1);
      assertThat(leaf.getKeyUsage()[0]).as("digitalSignature").isTrue();
      assertThat(leaf.getSigAlgName()).isEqualTo("SHA256withECDSA");
      assertThat(leaf.getPublicKey().getAlgorithm()).isEqualTo("EC");
      assertThat(leaf.getSerialNumber().signum()).isPositive();
      assertThat(leaf.getSerialNumber().bitLength()).isLessThanOrEqualTo(128);
      assertThat(Duration.between(leaf.getNotBefore().toInstant(), leaf.getNotAfter().toInstant()))
          .isEqualTo(Duration.ofHours(8760).plus(Pki.BACKDATE));
    }
    assertThat(
            List.of(server.getSerialNumber(), apiserver.getSerialNumber(), agent.getSerialNumber()))
        .doesNotHaveDuplicates();

    assertThat(server.getSubjectX500Principal().getName()).isEqualTo("CN=127.0.0.1");
    assertThat(server.getExtendedKeyUsage()).containsExactly(SERVER_AUTH);
    assertThat(server.getSubjectAlternativeNames())
        .containsExactlyInAnyOrder(
            List.of(7, "127.0.0.1"), List.of(2, "localhost"), List.of(2, "tunnel.example.com"));

    assertThat(apiserver.getSubjectX500Principal().getName()).isEqualTo("CN=kube-apiserver");
    assertThat(apiserver.getExtendedKeyUsage()).containsExactly(CLIENT_AUTH);
    assertThat(apiserver.getSubjectAlternativeNames()).isNull();

    assertThat(agent.getSubjectX500Principal().getName())
        .isEqualTo("CN=system:node:node-a,O=system:nodes");
    assertThat(agent.getExtendedKeyUsage()).containsExactly(CLIENT_AUTH);
  }

  @Test
  void serverSansAreClassifiedAsIpOrDns() throws Exception {
    Run r =
        certs(
            tmp,
            "--server-san",
            "tunnel.kube-system.svc",
            "--server-san",
            "::1",
            "--server-san",
            "10.0.0.12",
            "--apiserver-cn",
            "system:konnectivity-client");
    assertThat(r.exit()).as(r.err()).isZero();
    X509Certificate server = cert(tmp, "server.crt");
    assertThat(server.getSubjectX500Principal().getName()).isEqualTo("CN=tunnel.kube-system.svc");
    assertThat(server.getSubjectAlternativeNames())
        .containsExactlyInAnyOrder(
            List.of(2, "tunnel.kube-system.svc"),
            List.of(7, "0:0:0:0:0:0:0:1"),
            List.of(7, "10.0.0.12"));
    assertThat(cert(tmp, "apiserver.crt").getSubjectX500Principal().getName())
        .isEqualTo("CN=system:konnectivity-client");
  }

  @Test
  void badValuesAreRefusedBeforeAnythingIsWritten() {
    Path dir = tmp.resolve("out");
    for (String[] args :
        List.of(
            new String[] {"--server-san", "not a host!"},
            new String[] {"--server-san", "localhost", "--node", "../etc"},
            new String[] {"--server-san", "localhost", "--validity", "a year"},
            new String[] {"--server-san", "localhost", "--validity", "0d"},
            new String[] {"--server-san", "localhost", "--connect-port", "70000"},
            new String[] {"--server-san", "localhost", "--uds", "relative.sock"})) {
      Run r = certs(dir, args);
      assertThat(r.exit()).as(String.join(" ", args)).isEqualTo(2);
      assertThat(r.err()).startsWith("tunnel-server certs: ");
    }
    assertThat(dir).doesNotExist();
  }

  @Test
  void existingFilesAreNotOverwrittenWithoutForce() throws Exception {
    certsForLoopback(tmp, "--node", "node-a");
    byte[] serverKey = Files.readAllBytes(tmp.resolve("server.key"));
    byte[] agentCert = Files.readAllBytes(tmp.resolve("agent-node-a.crt"));

    Run again = certs(tmp, "--server-san", "127.0.0.1", "--node", "node-a");
    assertThat(again.exit()).isNotZero();
    assertThat(again.err())
        .contains(tmp.resolve("server.crt").toString())
        .contains("exists")
        .contains("--force");
    assertThat(Files.readAllBytes(tmp.resolve("server.key"))).isEqualTo(serverKey);
    assertThat(Files.readAllBytes(tmp.resolve("agent-node-a.crt"))).isEqualTo(agentCert);

    Run forced = certs(tmp, "--server-san", "127.0.0.1", "--node", "node-a", "--force");
    assertThat(forced.exit()).as(forced.err()).isZero();
    assertThat(Files.readAllBytes(tmp.resolve("server.key"))).isNotEqualTo(serverKey);
    assertThat(
            PosixFilePermissions.toString(Files.getPosixFilePermissions(tmp.resolve("server.key"))))
        .isEqualTo("rw-------");
  }

  @Test
  void aSecondRunSignsNewNodesWithTheSameCa() throws Exception {
    certsForLoopback(tmp, "--node", "node-a");
    byte[] caCert = Files.readAllBytes(tmp.resolve("ca.crt"));
    byte[] caKey = Files.readAllBytes(tmp.resolve("ca.key"));

    Run r = certsForLoopback(tmp, "--node", "node-b", "--force");
    assertThat(r.out()).contains("Using the existing CA " + tmp.resolve("ca.crt"));
    assertThat(Files.readAllBytes(tmp.resolve("ca.crt"))).isEqualTo(caCert);
    assertThat(Files.readAllBytes(tmp.resolve("ca.key"))).isEqualTo(caKey);
    X509Certificate ca = cert(tmp, "ca.crt");
    cert(tmp, "agent-node-a.crt").verify(ca.getPublicKey());
    cert(tmp, "agent-node-b.crt").verify(ca.getPublicKey());
    cert(tmp, "server.crt").verify(ca.getPublicKey());
  }

  @Test
  void aCaCertificateWithoutItsKeyIsAnError() throws Exception {
    certsForLoopback(tmp);
    Files.delete(tmp.resolve("ca.key"));
    Run r = certs(tmp, "--server-san", "localhost", "--force");
    assertThat(r.exit()).isEqualTo(2);
    assertThat(r.err()).contains(tmp.resolve("ca.key").toString()).contains("does not");
  }

  @Test
  @SuppressWarnings("unchecked")
  void egressSelectorConfigurationsPointAtTheServer() throws Exception {
    certsForLoopback(tmp, "--connect-port", "8131", "--uds", "/run/tunnel test/connect.sock");
    Map<String, Object> tcp =
        new Yaml().load(Files.readString(tmp.resolve("egress-selector-tcp.yaml")));
    assertThat(tcp)
        .containsEntry("apiVersion", "apiserver.k8s.io/v1beta1")
        .containsEntry("kind", "EgressSelectorConfiguration");
    List<Map<String, Object>> selections = (List<Map<String, Object>>) tcp.get("egressSelections");
    assertThat(selections).hasSize(1);
    assertThat(selections.get(0)).containsEntry("name", "cluster");
    Map<String, Object> connection = (Map<String, Object>) selections.get(0).get("connection");
    assertThat(connection).containsEntry("proxyProtocol", "HTTPConnect");
    Map<String, Object> transport = (Map<String, Object>) connection.get("transport");
    assertThat(transport).containsOnlyKeys("tcp");
    Map<String, Object> tcpTransport = (Map<String, Object>) transport.get("tcp");
    assertThat(tcpTransport).containsEntry("url", "https://127.0.0.1:8131");
    assertThat((Map<String, Object>) tcpTransport.get("tlsConfig"))
        .containsOnly(
            Map.entry("caBundle", tmp.resolve("ca.crt").toAbsolutePath().toString()),
            Map.entry("clientKey", tmp.resolve("apiserver.key").toAbsolutePath().toString()),
            Map.entry("clientCert", tmp.resolve("apiserver.crt").toAbsolutePath().toString()));

    Map<String, Object> uds =
        new Yaml().load(Files.readString(tmp.resolve("egress-selector-uds.yaml")));
    Map<String, Object> udsConnection =
        (Map<String, Object>)
            ((List<Map<String, Object>>) uds.get("egressSelections")).get(0).get("connection");
    assertThat(udsConnection).containsEntry("proxyProtocol", "HTTPConnect");
    assertThat((Map<String, Object>) udsConnection.get("transport"))
        .isEqualTo(Map.of("uds", Map.of("udsName", "/run/tunnel test/connect.sock")));

    Map<String, Object> grpc =
        new Yaml().load(Files.readString(tmp.resolve("egress-selector-grpc-uds.yaml")));
    Map<String, Object> grpcConnection =
        (Map<String, Object>)
            ((List<Map<String, Object>>) grpc.get("egressSelections")).get(0).get("connection");
    assertThat(grpcConnection).containsEntry("proxyProtocol", "GRPC");
    assertThat((Map<String, Object>) grpcConnection.get("transport"))
        .isEqualTo(Map.of("uds", Map.of("udsName", "/run/tunnel test/connect.sock")));
  }

  @Test
  void theApiserverCertificateGetsATunnelAndAnotherCasCertificateDoesNot() throws Exception {
    Path pki = tmp.resolve("pki");
    Path otherPki = tmp.resolve("other");
    certsForLoopback(pki);
    certsForLoopback(otherPki, "--node", "node-x");
    ServerConfig config =
        ServerConfig.plain(
                EgressMode.DISABLED,
                new InetSocketAddress("127.0.0.1", 0),
                new InetSocketAddress("127.0.0.1", 0))
            .withTls(
                new ServerConfig.TlsFiles(
                    pki.resolve("server.crt"), pki.resolve("server.key"), pki.resolve("ca.crt")),
                null);
    ExecutorService pool = Executors.newCachedThreadPool();
    try (ServerSocket target = new ServerSocket(0, 50, InetAddress.getByName("127.0.0.1"));
        TunnelServer server = new TunnelServer(config).start()) {
      pool.execute(() -> echo(target));
      KeyManager[] apiserver = keyManagers(pki, "apiserver");
      // Both SANs name the server: the client checks them as the apiserver does (HTTPS rules).
      for (String host : List.of("127.0.0.1", "localhost")) {
        try (SSLSocket s = tlsSocket(server.connectAddress(), host, pki, apiserver)) {
          OutputStream out = s.getOutputStream();
          out.write(connectRequest("127.0.0.1:" + target.getLocalPort()));
          out.flush();
          InputStream in = s.getInputStream();
          assertThat(new String(in.readNBytes(39), StandardCharsets.US_ASCII))
              .isEqualTo("HTTP/1.1 200 Connection established\r\n\r\n");
          byte[] payload = new byte[256 * 1024];
          new SecureRandom().nextBytes(payload);
          Future<?> sent =
              pool.submit(
                  () -> {
                    out.write(payload);
                    out.flush();
                    return null;
                  });
          assertThat(in.readNBytes(payload.length)).isEqualTo(payload);
          sent.get(15, TimeUnit.SECONDS);
        }
      }
      KeyManager[] stranger = keyManagers(otherPki, "agent-node-x");
      assertThatThrownBy(
              () -> {
                try (SSLSocket s = tlsSocket(server.connectAddress(), "127.0.0.1", pki, stranger)) {
                  s.getOutputStream().write(connectRequest("127.0.0.1:" + target.getLocalPort()));
                  s.getOutputStream().flush();
                  // TLS 1.3 lets a refused client certificate surface only at the first read.
                  if (s.getInputStream().read() < 0) {
                    throw new IOException("closed without an answer");
                  }
                }
              })
          .isInstanceOf(IOException.class);
      // And the server's certificate is not trusted by a client of the other CA either.
      assertThatThrownBy(() -> tlsSocket(server.connectAddress(), "127.0.0.1", otherPki, null))
          .isInstanceOf(IOException.class);
    } finally {
      pool.shutdownNow();
    }
  }

  private static byte[] connectRequest(String target) {
    return ("CONNECT " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .getBytes(StandardCharsets.US_ASCII);
  }

  /** Echoes every connection's bytes back until the listener closes. */
  private static void echo(ServerSocket listener) {
    while (!listener.isClosed()) {
      try (Socket s = listener.accept()) {
        InputStream in = s.getInputStream();
        OutputStream out = s.getOutputStream();
        byte[] buf = new byte[16 * 1024];
        for (int n; (n = in.read(buf)) > 0; ) {
          out.write(buf, 0, n);
        }
      } catch (IOException e) {
        // the listener closed, or the peer went away
      }
    }
  }

  /** A key manager with {@code name}.crt and {@code name}.key from {@code dir}, as written. */
  private static KeyManager[] keyManagers(Path dir, String name) throws Exception {
    KeyStore ks = KeyStore.getInstance("PKCS12");
    ks.load(null, null);
    char[] password = "test".toCharArray();
    ks.setKeyEntry(
        name,
        Pki.readPrivateKey(dir.resolve(name + ".key")),
        password,
        new X509Certificate[] {Pki.readCertificate(dir.resolve(name + ".crt"))});
    KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    kmf.init(ks, password);
    return kmf.getKeyManagers();
  }

  /** A TLS client trusting {@code caDir}/ca.crt, checking that the server's SANs name host. */
  private static SSLSocket tlsSocket(
      InetSocketAddress server, String host, Path caDir, KeyManager[] keys) throws Exception {
    KeyStore trust = KeyStore.getInstance("PKCS12");
    trust.load(null, null);
    trust.setCertificateEntry("ca", Pki.readCertificate(caDir.resolve("ca.crt")));
    TrustManagerFactory tmf =
        TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(trust);
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(keys, tmf.getTrustManagers(), null);
    Socket raw = new Socket();
    raw.connect(server, 5_000);
    SSLSocket s =
        (SSLSocket) ctx.getSocketFactory().createSocket(raw, host, server.getPort(), true);
    SSLParameters params = s.getSSLParameters();
    params.setEndpointIdentificationAlgorithm("HTTPS");
    s.setSSLParameters(params);
    s.setSoTimeout(15_000);
    try {
      s.startHandshake();
    } catch (IOException e) {
      s.close();
      throw e;
    }
    return s;
  }

  @Test
  void serialsArePositiveAndRandom() {
    BigInteger a = Pki.newSerial();
    BigInteger b = Pki.newSerial();
    assertThat(a.signum()).isPositive();
    assertThat(a).isNotEqualTo(b);
  }
}

package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.routing.EgressMode;
import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tunnel-server doctor} through the real command line: certificates good and bad (expired,
 * expiring, wrong SAN, wrong CA, wrong key, CN not admitted), the apiserver's egress selector
 * config against the listeners, and a running server with an agent: its routes, a target's route
 * and a real CONNECT, plain and with mTLS.
 */
class DoctorTest {
  @TempDir Path dir;

  private record Run(int exit, String out, String err) {
    /** The line of {@code check}, e.g. {@code --tls-cert validity}. */
    String line(String check) {
      return out.lines()
          .filter(l -> l.substring(Math.min(6, l.length())).startsWith(check + ": "))
          .findFirst()
          .orElseThrow(() -> new AssertionError("no line for " + check + " in:\n" + out));
    }
  }

  private static Run doctor(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    var cl = TunnelServerMain.commandLine();
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    List<String> all = new ArrayList<>();
    all.add("doctor");
    all.addAll(List.of(args));
    int exit = cl.execute(all.toArray(String[]::new));
    return new Run(exit, out.toString(), err.toString());
  }

  private String write(String name, String pem) throws Exception {
    Path p = dir.resolve(name);
    Files.writeString(p, pem);
    return p.toString();
  }

  private String cert(String name, X509Bundle b) throws Exception {
    return write(name + ".crt", b.getCertificatePathPEM());
  }

  private String key(String name, X509Bundle b) throws Exception {
    return write(name + ".key", b.getPrivateKeyPEM());
  }

  private static final Instant NOW = Instant.now();
  private static final Instant YESTERDAY = NOW.minus(Duration.ofDays(1));
  private static final Instant NEXT_YEAR = NOW.plus(Duration.ofDays(365));

  /** A CA valid for a year (TestPki's are valid for a day, which the doctor warns about). */
  private static X509Bundle ca(String subject) throws Exception {
    return new CertificateBuilder()
        .subject(subject)
        .setIsCertificateAuthority(true)
        .notBefore(YESTERDAY)
        .notAfter(NEXT_YEAR)
        .ecp256()
        .buildSelfSigned();
  }

  private static X509Bundle serverCert(
      X509Bundle ca, Instant notBefore, Instant notAfter, String ip) throws Exception {
    return new CertificateBuilder()
        .subject("CN=tunnel-server")
        .addSanIpAddress(ip)
        .addSanDnsName("localhost")
        .addExtendedKeyUsageServerAuth()
        .notBefore(notBefore)
        .notAfter(notAfter)
        .ecp256()
        .buildIssuedBy(ca);
  }

  private static X509Bundle clientCert(X509Bundle ca, String subject) throws Exception {
    return new CertificateBuilder()
        .subject(subject)
        .addExtendedKeyUsageClientAuth()
        .notBefore(YESTERDAY)
        .notAfter(NEXT_YEAR)
        .ecp256()
        .buildIssuedBy(ca);
  }

  @Test
  void goodCertificatesPassEveryCheck() throws Exception {
    X509Bundle ca = ca("CN=test CA");
    X509Bundle server = serverCert(ca, YESTERDAY, NEXT_YEAR, "127.0.0.1");
    X509Bundle apiserver = clientCert(ca, "CN=kube-apiserver");
    Run r =
        doctor(
            "--tls-cert", cert("server", server),
            "--tls-key", key("server", server),
            "--client-ca", write("ca.crt", ca.getCertificatePEM()),
            "--client-allowed-names", "kube-apiserver",
            "--agent-tls-cert", cert("server", server),
            "--agent-tls-key", key("server", server),
            "--agent-url", "wss://localhost:8091",
            "--apiserver-cert", cert("apiserver", apiserver),
            "--apiserver-key", key("apiserver", apiserver));
    assertThat(r.exit()).as(r.out()).isZero();
    assertThat(r.line("--tls-cert validity"))
        .startsWith("ok    ")
        .contains("server.crt valid until");
    assertThat(r.line("--tls-cert key")).startsWith("ok    ");
    assertThat(r.line("--tls-cert chain"))
        .startsWith("ok    ")
        .contains("signed by CN=test CA in --client-ca ca.crt");
    assertThat(r.line("--tls-cert names"))
        .isEqualTo("ok    --tls-cert names: covers 127.0.0.1 (--connect-listen)");
    assertThat(r.line("--agent-tls-cert names"))
        .isEqualTo("ok    --agent-tls-cert names: covers localhost (the agents' --server URL)");
    assertThat(r.line("--apiserver-cert usage")).contains("includes clientAuth");
    assertThat(r.line("--apiserver-cert name"))
        .isEqualTo("ok    --apiserver-cert name: CN=kube-apiserver is in --client-allowed-names");
    assertThat(r.out().lines().filter(l -> !l.contains(" check(s): ")))
        .allMatch(l -> l.startsWith("ok    "));
    assertThat(r.out()).contains("0 warning(s), 0 failure(s)");
  }

  @Test
  void expiredExpiringMisnamedAndForeignCertificatesSayWhatIsWrong() throws Exception {
    X509Bundle ca = ca("CN=test CA");
    X509Bundle otherCa = ca("CN=other CA");
    Instant now = NOW;
    X509Bundle expired =
        serverCert(ca, now.minus(Duration.ofDays(40)), now.minus(Duration.ofDays(2)), "127.0.0.1");
    X509Bundle expiring =
        serverCert(ca, now.minus(Duration.ofDays(1)), now.plus(Duration.ofDays(10)), "127.0.0.1");
    X509Bundle elsewhere =
        serverCert(ca, now.minus(Duration.ofDays(1)), now.plus(Duration.ofDays(300)), "10.9.9.9");
    X509Bundle foreignApiserver = clientCert(otherCa, "CN=kube-apiserver");
    X509Bundle wrongName = clientCert(ca, "CN=system:anonymous");
    String caFile = write("ca.crt", ca.getCertificatePEM());

    Run r =
        doctor(
            "--tls-cert", cert("expired", expired),
            "--tls-key", key("expiring", expiring), // not its key
            "--client-ca", caFile,
            "--agent-tls-cert", cert("expiring", expiring),
            "--agent-tls-key", key("expiring", expiring),
            "--apiserver-cert", cert("foreign", foreignApiserver),
            "--apiserver-key", key("foreign", foreignApiserver));
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.line("--tls-cert validity"))
        .startsWith("FAIL  ")
        .contains("expired.crt expired on")
        .contains("(2 days ago)");
    assertThat(r.line("--tls-cert key"))
        .startsWith("FAIL  ")
        .contains("--tls-key expiring.key is not the key of this certificate");
    assertThat(r.line("--agent-tls-cert validity"))
        .startsWith("WARN  ")
        .contains("expires within 30 days");
    assertThat(r.line("--agent-tls-cert key")).startsWith("ok    ");
    assertThat(r.line("--apiserver-cert chain"))
        .startsWith("FAIL  ")
        .contains("not signed by --client-ca ca.crt (its issuer is CN=other CA");

    Run named =
        doctor(
            "--tls-cert",
            cert("elsewhere", elsewhere),
            "--client-ca",
            caFile,
            "--server-name",
            "127.0.0.1,tunnel.example",
            "--client-allowed-names",
            "kube-apiserver",
            "--apiserver-cert",
            cert("anonymous", wrongName),
            "--apiserver-key",
            key("anonymous", wrongName));
    assertThat(named.exit()).isEqualTo(1);
    assertThat(named.out())
        .contains(
            "FAIL  --tls-cert names: does not cover 127.0.0.1 (given with --server-name); its"
                + " names are IP 10.9.9.9")
        .contains("FAIL  --tls-cert names: does not cover tunnel.example");
    assertThat(named.line("--tls-cert key")).startsWith("WARN  ").contains("not checked");
    assertThat(named.line("--apiserver-cert name"))
        .isEqualTo(
            "FAIL  --apiserver-cert name: CN=system:anonymous is not in --client-allowed-names"
                + " kube-apiserver: the server answers its CONNECTs 403");
  }

  @Test
  void egressSelectorConfigIsCheckedAgainstTheListeners() throws Exception {
    Path certs = dir.resolve("certs");
    var cl = TunnelServerMain.commandLine();
    cl.setOut(new PrintWriter(new StringWriter()));
    assertThat(
            cl.execute(
                "certs",
                "--dir",
                certs.toString(),
                "--server-san",
                "127.0.0.1",
                "--connect-port",
                "18090",
                "--uds",
                dir.resolve("connect.sock").toString()))
        .isZero();
    String tcp = certs.resolve("egress-selector-tcp.yaml").toString();
    String[] tls = {
      "--tls-cert", certs.resolve("server.crt").toString(),
      "--tls-key", certs.resolve("server.key").toString(),
      "--client-ca", certs.resolve("ca.crt").toString(),
      "--client-allowed-names", "kube-apiserver"
    };

    Run good =
        doctor(concat(tls, "--egress-selector-config", tcp, "--connect-listen", "127.0.0.1:18090"));
    assertThat(good.exit()).as(good.out()).isZero();
    assertThat(good.line("egress-selector cluster"))
        .isEqualTo(
            "ok    egress-selector cluster: url https://127.0.0.1:18090 reaches the CONNECT"
                + " listener 127.0.0.1:18090");
    assertThat(good.out())
        .contains("ok    clientCert validity: apiserver.crt valid until")
        .contains("ok    clientCert name: CN=kube-apiserver is in --client-allowed-names")
        .contains("ok    --tls-cert chain: signed by CN=egress-tunnel-ca")
        .contains("in caBundle ca.crt")
        .contains("ok    --tls-cert names: covers 127.0.0.1 (the egress selector config's url)");

    Run wrongPort =
        doctor(concat(tls, "--egress-selector-config", tcp, "--connect-listen", "127.0.0.1:18091"));
    assertThat(wrongPort.exit()).isEqualTo(1);
    assertThat(wrongPort.line("egress-selector cluster"))
        .isEqualTo(
            "FAIL  egress-selector cluster: url https://127.0.0.1:18090 points at 127.0.0.1:18090,"
                + " but the server's CONNECT listener is --connect-listen 127.0.0.1:18091");

    Run noTls = doctor("--egress-selector-config", tcp, "--connect-listen", "127.0.0.1:18090");
    assertThat(noTls.exit()).isEqualTo(1);
    assertThat(noTls.out())
        .contains("FAIL  egress-selector cluster: url is https:// but no --tls-cert was given");

    Files.delete(certs.resolve("apiserver.key"));
    Run missing =
        doctor(concat(tls, "--egress-selector-config", tcp, "--connect-listen", "127.0.0.1:18090"));
    assertThat(missing.exit()).isEqualTo(1);
    assertThat(missing.out())
        .containsPattern(
            "FAIL  egress-selector cluster: tlsConfig.clientKey \\S+apiserver.key does not exist");

    String udsYaml = certs.resolve("egress-selector-uds.yaml").toString();
    Run noUds = doctor("--egress-selector-config", udsYaml);
    assertThat(noUds.exit()).isEqualTo(1);
    assertThat(noUds.line("egress-selector cluster"))
        .contains("but no --uds was given: the server listens on a Unix socket only with --uds");
    Run uds =
        doctor(
            "--egress-selector-config", udsYaml, "--uds", dir.resolve("connect.sock").toString());
    assertThat(uds.exit()).as(uds.out()).isZero();

    Run notYaml = doctor("--egress-selector-config", write("bad.yaml", "kind: Pod\n"));
    assertThat(notYaml.exit()).isEqualTo(1);
    assertThat(notYaml.line("egress-selector"))
        .contains("kind is Pod, not EgressSelectorConfiguration");
  }

  private static String[] concat(String[] a, String... b) {
    List<String> all = new ArrayList<>(List.of(a));
    all.addAll(List.of(b));
    return all.toArray(String[]::new);
  }

  @Test
  void aRunningServerItsAgentAndATargetThroughARealConnect() throws Exception {
    try (TunnelFixture fx =
            new TunnelFixture(
                ServerConfig.plain(
                        EgressMode.AGENT,
                        new InetSocketAddress("127.0.0.1", 0),
                        new InetSocketAddress("127.0.0.1", 0))
                    .withAdminListen(new InetSocketAddress("127.0.0.1", 0)));
        TestTarget kubelet = new TestTarget("127.0.16.1", 0, TestTarget::echo)) {
      fx.startAgent(
          fx.agentConfig("node-d", "127.0.16.1", null, EgressMode.AGENT)
              .withKubeletPort(kubelet.port()));
      String admin = "127.0.0.1:" + fx.server.adminAddress().getPort();
      String connect = "127.0.0.1:" + fx.proxy().getPort();
      String target = "127.0.16.1:" + kubelet.port();

      Run r = doctor("--admin", admin, "--connect-listen", connect, "--target", target);
      assertThat(r.exit()).as(r.out()).isZero();
      assertThat(r.line("server"))
          .isEqualTo("ok    server: server server-1 answers on " + admin + ", mode agent");
      assertThat(r.line("server readiness")).isEqualTo("ok    server readiness: ready");
      assertThat(r.line("agents")).isEqualTo("ok    agents: 1 agent(s) connected");
      assertThat(r.line("agent node-d"))
          .startsWith("WARN  agent node-d: connected from 127.0.0.1:")
          .endsWith(
              "; without credentials: the server requires none (no --agent-token-file,"
                  + " --agent-client-ca or --authentication-audience), so anyone who reaches its"
                  + " agent listener can speak for any node");
      assertThat(r.line("agent node-d routes"))
          .isEqualTo("ok    agent node-d routes: kubelet " + target + " via node-d");
      assertThat(r.line("target route"))
          .isEqualTo("ok    target route: " + target + " would go via node-d");
      assertThat(r.line("target dial"))
          .startsWith("ok    target dial: CONNECT " + target + " through " + connect + ": 200 ");

      int closed;
      try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
        closed = s.getLocalPort();
      }
      Run refused =
          doctor("--admin", admin, "--connect-listen", connect, "--target", "127.0.0.1:" + closed);
      assertThat(refused.exit()).isEqualTo(1);
      assertThat(refused.line("target route"))
          .startsWith("ok    target route: 127.0.0.1:" + closed + " would go direct");
      assertThat(refused.line("target dial"))
          .startsWith(
              "FAIL  target dial: CONNECT 127.0.0.1:" + closed + " through " + connect + ": 502 ")
          .contains("connection refused");

      fx.agents.get(0).close();
      Run gone = doctor("--admin", admin, "--connect-listen", connect, "--target", target);
      assertThat(gone.exit()).isEqualTo(1);
      assertThat(gone.line("agents")).startsWith("WARN  agents: no agent is connected");
      assertThat(gone.line("target route"))
          .isEqualTo(
              "FAIL  target route: "
                  + target
                  + " would go no-agent node-d: the node's agent is not connected, so a CONNECT"
                  + " gets 503");
      assertThat(gone.line("target dial"))
          .contains(": 503 ")
          .contains("no agent connected for node node-d");

      Run down = doctor("--admin", "127.0.0.1:" + closed);
      assertThat(down.exit()).isEqualTo(1);
      assertThat(down.line("server"))
          .startsWith("FAIL  server: --admin 127.0.0.1:" + closed + ": connection refused");
    }
  }

  @Test
  void anAgentAdmittedWithATokenShowsHowItWasAuthenticated() throws Exception {
    Path tokens = Files.writeString(dir.resolve("tokens"), "s3cret-token-for-node-t node-t\n");
    Path token = Files.writeString(dir.resolve("token"), "s3cret-token-for-node-t\n");
    try (TunnelFixture fx =
        new TunnelFixture(
            ServerConfig.plain(
                    EgressMode.AGENT,
                    new InetSocketAddress("127.0.0.1", 0),
                    new InetSocketAddress("127.0.0.1", 0))
                .withAdminListen(new InetSocketAddress("127.0.0.1", 0))
                .withAgentTokenFile(tokens))) {
      var c = fx.agentConfig("node-t", "127.0.16.3", null, EgressMode.AGENT);
      fx.startAgent(
          c.withCredentials(
              c.caCert(), new io.egresstunnel.agent.AgentConfig.Credentials(token, null, null)));
      Run r = doctor("--admin", "127.0.0.1:" + fx.server.adminAddress().getPort());
      assertThat(r.exit()).as(r.out()).isZero();
      assertThat(r.line("agent node-t"))
          .startsWith("ok    agent node-t: connected from 127.0.0.1:")
          .contains(", authenticated by token (--agent-token-file), last heard ");
    }
  }

  @Test
  void aTargetDialOverMutualTlsWithTheApiserversCertificate() throws Exception {
    X509Bundle ca = TestPki.ca("CN=test CA");
    X509Bundle server = TestPki.server(ca);
    X509Bundle apiserver = TestPki.client(ca, "CN=kube-apiserver");
    try (TunnelFixture fx =
            new TunnelFixture(
                ServerConfig.plain(
                        EgressMode.AGENT,
                        new InetSocketAddress("127.0.0.1", 0),
                        new InetSocketAddress("127.0.0.1", 0))
                    .withTls(TestPki.serverFiles(server, ca), null));
        TestTarget kubelet = new TestTarget("127.0.16.2", 0, TestTarget::echo)) {
      fx.startAgent(
          fx.agentConfig("node-m", "127.0.16.2", null, EgressMode.AGENT)
              .withKubeletPort(kubelet.port()));
      String connect = "127.0.0.1:" + fx.proxy().getPort();
      String target = "127.0.16.2:" + kubelet.port();
      String[] tls = {
        "--tls-cert", cert("server", server),
        "--tls-key", key("server", server),
        "--client-ca", write("ca.crt", ca.getCertificatePEM()),
        "--connect-listen", connect,
        "--target", target
      };
      Run r =
          doctor(
              concat(
                  tls,
                  "--apiserver-cert",
                  cert("apiserver", apiserver),
                  "--apiserver-key",
                  key("apiserver", apiserver)));
      assertThat(r.exit()).as(r.out()).isZero();
      assertThat(r.line("target dial"))
          .startsWith(
              "ok    target dial: CONNECT " + target + " through " + connect + " (TLS): 200 ");

      Run noIdentity = doctor(tls);
      assertThat(noIdentity.exit()).isEqualTo(1);
      assertThat(noIdentity.line("target dial"))
          .contains("cannot CONNECT over TLS without the apiserver's certificate");

      X509Bundle stranger = TestPki.client(TestPki.ca("CN=other CA"), "CN=kube-apiserver");
      Run refused =
          doctor(
              concat(
                  tls,
                  "--apiserver-cert",
                  cert("stranger", stranger),
                  "--apiserver-key",
                  key("stranger", stranger)));
      assertThat(refused.exit()).isEqualTo(1);
      assertThat(refused.line("--apiserver-cert chain")).startsWith("FAIL  ");
      assertThat(refused.line("target dial"))
          .startsWith(
              "FAIL  target dial: CONNECT " + target + " through " + connect + " (TLS) failed: ");
    }
  }

  @Test
  void nothingToCheckIsAUsageError() {
    Run r = doctor();
    assertThat(r.exit()).isEqualTo(2);
    assertThat(r.err()).contains("nothing to check");
  }
}

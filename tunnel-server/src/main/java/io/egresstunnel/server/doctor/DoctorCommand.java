package io.egresstunnel.server.doctor;

import io.egresstunnel.proto.config.Units;
import io.egresstunnel.proto.net.Addresses;
import io.egresstunnel.proto.status.AdminClient;
import io.egresstunnel.proto.status.StatusText;
import io.egresstunnel.server.admin.ServerStatus;
import io.egresstunnel.server.agents.AgentAuthenticator;
import io.egresstunnel.server.certs.Pki;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code tunnel-server doctor}: checks a deployment from the apiserver's point of view and says
 * what is wrong, one line per check ({@code ok}, {@code WARN}, {@code FAIL}); exit status 1 if any
 * check fails.
 */
@Command(
    name = "doctor",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    usageHelpWidth = 100,
    description = {
      "Checks a deployment from the apiserver's point of view, one line per check (ok, WARN or"
          + " FAIL); exits 1 if any check fails. It checks what it is given: certificates (dates,"
          + " key, chain to the CA, the names clients dial, key usage, the CN the server admits),"
          + " the apiserver's EgressSelectorConfiguration against the server's listeners, a"
          + " running server's readiness, agents and their routes (--admin), and where a dial"
          + " to --target goes and whether it connects, through a real CONNECT.",
      ""
    })
public final class DoctorCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Option(
      names = "--tls-cert",
      paramLabel = "PEM",
      description = "The CONNECT listener's certificate (as given to the server).")
  Path tlsCert;

  @Option(names = "--tls-key", paramLabel = "PEM", description = "Its private key.")
  Path tlsKey;

  @Option(
      names = "--client-ca",
      paramLabel = "PEM",
      description = "The CA that must sign the apiserver's client certificate.")
  Path clientCa;

  @Option(
      names = "--client-allowed-names",
      paramLabel = "CN",
      split = ",",
      description = "The CNs the server admits (its --client-allowed-names).")
  List<String> clientAllowedNames = new ArrayList<>();

  @Option(
      names = "--agent-tls-cert",
      paramLabel = "PEM",
      description = "The agent listener's certificate.")
  Path agentTlsCert;

  @Option(names = "--agent-tls-key", paramLabel = "PEM", description = "Its private key.")
  Path agentTlsKey;

  @Option(
      names = "--apiserver-cert",
      paramLabel = "PEM",
      description =
          "The apiserver's client certificate. Default: tlsConfig.clientCert of the egress"
              + " selector config.")
  Path apiserverCert;

  @Option(
      names = "--apiserver-key",
      paramLabel = "PEM",
      description = "Its private key. Default: tlsConfig.clientKey of the egress selector config.")
  Path apiserverKey;

  @Option(
      names = "--ca",
      paramLabel = "PEM",
      description =
          "The CA the apiserver and the agents trust for the server's certificates (caBundle,"
              + " the agents' --ca-cert). Default: caBundle of the egress selector config, else"
              + " --client-ca.")
  Path ca;

  @Option(
      names = "--server-name",
      paramLabel = "HOST",
      split = ",",
      description =
          "A name or address the apiserver dials for the CONNECT listener (repeatable)."
              + " Default: the host of the egress selector config's URL, else of"
              + " --connect-listen.")
  List<String> serverNames = new ArrayList<>();

  @Option(
      names = "--agent-url",
      paramLabel = "URL",
      split = ",",
      description =
          "A URL the agents are given (their --server; repeatable): --agent-tls-cert must"
              + " cover its host.")
  List<String> agentUrls = new ArrayList<>();

  @Option(
      names = "--connect-listen",
      paramLabel = "HOST:PORT",
      defaultValue = "127.0.0.1:8090",
      description = "The server's --connect-listen. Default: ${DEFAULT-VALUE}.")
  String connectListen;

  @Option(names = "--uds", paramLabel = "PATH", description = "The server's --uds, if any.")
  Path uds;

  @Option(
      names = "--egress-selector-config",
      paramLabel = "FILE",
      description = "The apiserver's --egress-selector-config-file.")
  Path egressSelectorConfig;

  @Option(
      names = "--admin",
      paramLabel = "HOST:PORT",
      description =
          "A running server's --admin-listen: check its readiness, agents and their routes.")
  String admin;

  @Option(
      names = "--target",
      paramLabel = "HOST:PORT",
      description =
          "Where a dial to this target goes (with --admin), and a real CONNECT to it through"
              + " the server, as the apiserver sends it.")
  String target;

  private Findings findings;
  private CertificateChecks certs;
  private EgressSelection cluster;
  private Path[] apiserverIdentity; // the apiserver's certificate and key files, once known

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    if (tlsCert == null
        && agentTlsCert == null
        && apiserverCert == null
        && clientCa == null
        && ca == null
        && egressSelectorConfig == null
        && admin == null
        && target == null) {
      spec.commandLine()
          .getErr()
          .println(
              "tunnel-server doctor: nothing to check; give certificates (--tls-cert ...),"
                  + " --egress-selector-config, --admin or --target (see --help)");
      return 2;
    }
    try {
      Units.parseHostPort(connectListen);
    } catch (IllegalArgumentException e) {
      spec.commandLine()
          .getErr()
          .println("tunnel-server doctor: --connect-listen: " + e.getMessage());
      return 2;
    }
    findings = new Findings(out);
    certs = new CertificateChecks(findings, Instant.now());
    if (egressSelectorConfig != null) {
      egressSelector();
    }
    certificates();
    ServerStatus.Report status = admin == null ? null : server();
    if (target != null) {
      target(status != null);
    }
    findings.summary();
    return findings.failures() > 0 ? 1 : 0;
  }

  // ---- the apiserver's EgressSelectorConfiguration -------------------------------------------

  private void egressSelector() {
    String check = "egress-selector";
    List<EgressSelection> selections;
    try {
      selections = EgressSelection.read(egressSelectorConfig);
    } catch (java.io.IOException e) {
      findings.fail(check, "cannot read " + egressSelectorConfig + ": " + e.getMessage());
      return;
    } catch (IllegalArgumentException e) {
      findings.fail(check, egressSelectorConfig + " is " + e.getMessage());
      return;
    }
    for (EgressSelection s : selections) {
      String name = check + " " + s.name();
      if ("Direct".equals(s.proxyProtocol())) {
        findings.ok(name, "Direct: the apiserver dials these itself, not through the tunnel");
        continue;
      }
      if (!"HTTPConnect".equals(s.proxyProtocol()) && !"GRPC".equals(s.proxyProtocol())) {
        findings.fail(
            name,
            "proxyProtocol "
                + s.proxyProtocol()
                + " is none of HTTPConnect, GRPC, Direct: the apiserver will not start");
        continue;
      }
      if ("cluster".equals(s.name())) {
        cluster = s;
      }
      if (s.url() != null) {
        tcpSelection(name, s);
      } else if (s.udsName() != null) {
        udsSelection(name, s);
      } else {
        findings.fail(name, "no transport (tcp.url or uds.udsName): the apiserver will not start");
      }
    }
  }

  private void tcpSelection(String check, EgressSelection s) {
    URI url;
    try {
      url = URI.create(s.url());
    } catch (IllegalArgumentException e) {
      findings.fail(check, "url " + s.url() + " is not a URL: " + e.getMessage());
      return;
    }
    if ("GRPC".equals(s.proxyProtocol())) {
      findings.fail(
          check,
          "proxyProtocol GRPC over tcp: the apiserver speaks GRPC only over uds; use HTTPConnect"
              + " or a uds transport");
    }
    boolean https = "https".equals(url.getScheme());
    if (!https && !"http".equals(url.getScheme())) {
      findings.fail(check, "url " + s.url() + " is neither http:// nor https://");
      return;
    }
    int port = url.getPort() >= 0 ? url.getPort() : (https ? 443 : 80);
    InetSocketAddress listen = Units.parseHostPort(connectListen);
    if (port != listen.getPort() || !sameHost(url.getHost(), listen)) {
      findings.fail(
          check,
          "url "
              + s.url()
              + " points at "
              + url.getHost()
              + ":"
              + port
              + ", but the server's CONNECT listener is --connect-listen "
              + connectListen);
    } else {
      findings.ok(check, "url " + s.url() + " reaches the CONNECT listener " + connectListen);
    }
    if (https && tlsCert == null) {
      findings.fail(
          check,
          "url is https:// but no --tls-cert was given: the server serves TLS only with"
              + " --tls-cert, --tls-key and --client-ca (give them here too, or use http://)");
    } else if (!https && tlsCert != null) {
      findings.fail(
          check, "url is http:// but the CONNECT listener speaks TLS (--tls-cert): use https://");
    }
    if (https) {
      if (s.clientCert() == null || s.clientKey() == null) {
        findings.fail(
            check,
            "tlsConfig has no clientCert/clientKey, but the server requires a client certificate"
                + " (--client-ca): the handshake fails");
      }
      if (s.caBundle() == null) {
        findings.warn(
            check,
            "tlsConfig has no caBundle: the apiserver checks the server against the system's CAs");
      }
      tlsFile(check, "caBundle", s.caBundle());
      tlsFile(check, "clientCert", s.clientCert());
      tlsFile(check, "clientKey", s.clientKey());
    }
  }

  private void tlsFile(String check, String field, String file) {
    if (file == null) {
      return;
    }
    Path p = Path.of(file);
    if (!Files.isRegularFile(p)) {
      findings.fail(check, "tlsConfig." + field + " " + file + " does not exist");
    } else if (!Files.isReadable(p)) {
      findings.fail(check, "tlsConfig." + field + " " + file + " is not readable by this user");
    } else {
      findings.ok(check, "tlsConfig." + field + " " + file + " exists");
    }
  }

  private void udsSelection(String check, EgressSelection s) {
    String socket = s.udsName();
    if (socket.startsWith("unix://")) {
      findings.fail(
          check,
          "udsName "
              + socket
              + " has a unix:// prefix; the apiserver wants the bare path "
              + socket.substring("unix://".length()));
      socket = socket.substring("unix://".length());
    }
    if (uds == null) {
      findings.fail(
          check,
          "udsName "
              + socket
              + ", but no --uds was given: the server listens on a Unix socket only with --uds");
    } else if (!Path.of(socket)
        .toAbsolutePath()
        .normalize()
        .equals(uds.toAbsolutePath().normalize())) {
      findings.fail(check, "udsName " + socket + " is not the server's --uds " + uds);
    } else {
      findings.ok(check, "udsName " + socket + " is the server's --uds");
    }
  }

  private static boolean sameHost(String host, InetSocketAddress listen) {
    InetAddress l = listen.getAddress();
    if (l == null) {
      return host.equalsIgnoreCase(listen.getHostString());
    }
    if (l.isAnyLocalAddress()) {
      return true;
    }
    try {
      for (InetAddress a : InetAddress.getAllByName(host)) {
        if (a.equals(l) || (a.isLoopbackAddress() && l.isLoopbackAddress())) {
          return true;
        }
      }
    } catch (java.net.UnknownHostException e) {
      return false;
    }
    return false;
  }

  // ---- certificates ---------------------------------------------------------------------------

  private void certificates() {
    Path serverCa = ca;
    String serverCaFlag = "--ca";
    if (serverCa == null && cluster != null && cluster.caBundle() != null) {
      serverCa = Path.of(cluster.caBundle());
      serverCaFlag = "caBundle";
    }
    if (serverCa == null && clientCa != null) {
      serverCa = clientCa;
      serverCaFlag = "--client-ca";
    }
    List<X509Certificate> serverCaCerts = null;
    if (serverCa != null) {
      serverCaCerts = certs.read(serverCaFlag, serverCa);
      if (serverCaCerts != null && !serverCa.equals(clientCa)) {
        certs.validity(serverCaFlag + " validity", serverCa, serverCaCerts);
      }
    }
    List<X509Certificate> clientCaCerts = null;
    if (clientCa != null) {
      clientCaCerts = certs.read("--client-ca", clientCa);
      if (clientCaCerts != null) {
        certs.validity("--client-ca validity", clientCa, clientCaCerts);
      }
    }
    if (tlsCert != null) {
      List<String> names = new ArrayList<>(serverNames);
      String why = "given with --server-name";
      if (names.isEmpty() && cluster != null && cluster.url() != null) {
        names.add(URI.create(cluster.url()).getHost());
        why = "the egress selector config's url";
      } else if (names.isEmpty()) {
        InetSocketAddress listen = Units.parseHostPort(connectListen);
        if (listen.getAddress() == null || !listen.getAddress().isAnyLocalAddress()) {
          names.add(listen.getHostString());
          why = "--connect-listen";
        }
      }
      certificate(
          "--tls-cert",
          tlsCert,
          "--tls-key",
          tlsKey,
          CertificateChecks.Role.SERVER,
          names,
          why,
          serverCaFlag,
          serverCa,
          serverCaCerts);
    }
    if (agentTlsCert != null) {
      List<String> names = new ArrayList<>();
      for (String u : agentUrls) {
        names.add(URI.create(u).getHost());
      }
      certificate(
          "--agent-tls-cert",
          agentTlsCert,
          "--agent-tls-key",
          agentTlsKey,
          CertificateChecks.Role.SERVER,
          names,
          "the agents' --server URL",
          serverCaFlag,
          serverCa,
          serverCaCerts);
    }
    Path apiCert = apiserverCert;
    Path apiKey = apiserverKey;
    String certFlag = "--apiserver-cert";
    String keyFlag = "--apiserver-key";
    if (apiCert == null && cluster != null && cluster.clientCert() != null) {
      apiCert = Path.of(cluster.clientCert());
      certFlag = "clientCert";
      if (apiKey == null && cluster.clientKey() != null) {
        apiKey = Path.of(cluster.clientKey());
        keyFlag = "clientKey";
      }
    }
    if (apiCert != null) {
      List<X509Certificate> chain =
          certificate(
              certFlag,
              apiCert,
              keyFlag,
              apiKey,
              CertificateChecks.Role.CLIENT,
              List.of(),
              "",
              "--client-ca",
              clientCa,
              clientCaCerts);
      if (chain != null && !clientAllowedNames.isEmpty()) {
        certs.allowedName(certFlag + " name", chain.get(0), clientAllowedNames);
      }
      apiserverIdentity = new Path[] {apiCert, apiKey};
    }
  }

  private List<X509Certificate> certificate(
      String certFlag,
      Path cert,
      String keyFlag,
      Path key,
      CertificateChecks.Role role,
      List<String> names,
      String why,
      String caFlag,
      Path caFile,
      List<X509Certificate> caCerts) {
    List<X509Certificate> chain = certs.read(certFlag, cert);
    if (chain == null) {
      return null;
    }
    certs.validity(certFlag + " validity", cert, chain.subList(0, 1));
    if (key != null) {
      certs.keyMatches(certFlag + " key", keyFlag, key, chain.get(0));
    } else {
      findings.warn(certFlag + " key", "no " + keyFlag + " given: not checked");
    }
    if (caCerts != null) {
      certs.chain(certFlag + " chain", chain, caFlag, caFile, caCerts);
    } else {
      findings.warn(certFlag + " chain", "no CA given (--ca or --client-ca): not checked");
    }
    if (role == CertificateChecks.Role.SERVER && !names.isEmpty()) {
      certs.names(certFlag + " names", chain.get(0), names, why);
    }
    certs.usage(certFlag + " usage", chain.get(0), role);
    return chain;
  }

  // ---- a running server -----------------------------------------------------------------------

  private ServerStatus.Report server() throws InterruptedException {
    AdminClient client = new AdminClient(admin);
    ServerStatus.Report status;
    try {
      status = ServerStatus.fromJson(client.getOk("/status"));
    } catch (AdminClient.AdminException e) {
      findings.fail("server", e.getMessage() + ": is the server running with this --admin-listen?");
      return null;
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      findings.fail("server", admin + "/status is not a tunnel-server status: " + e.getMessage());
      return null;
    }
    findings.ok(
        "server",
        "server " + status.serverId() + " answers on " + admin + ", mode " + status.mode());
    try {
      AdminClient.Answer ready = client.get("/readyz?verbose");
      if (ready.status() == 200) {
        findings.ok("server readiness", "ready");
      } else {
        List<String> failed =
            ready
                .body()
                .lines()
                .filter(l -> l.startsWith("[-] "))
                .map(l -> l.substring(4))
                .toList();
        findings.fail(
            "server readiness",
            "not ready ("
                + (failed.isEmpty()
                    ? ready.status() + " " + ready.body().strip()
                    : String.join("; ", failed))
                + "): load balancers and the apiserver's probes treat it as down");
      }
    } catch (AdminClient.AdminException e) {
      findings.fail("server readiness", e.getMessage());
    }
    if (status.agents().isEmpty()) {
      findings.warn(
          "agents",
          "no agent is connected: every CONNECT routed to a node gets 503 (check the agents' logs"
              + " and their --server URL)");
    } else {
      findings.ok("agents", status.agents().size() + " agent(s) connected");
    }
    boolean routez = true;
    for (ServerStatus.Agent a : status.agents()) {
      String check = "agent " + a.node();
      String how =
          "connected from "
              + StatusText.address(a.address())
              + " for "
              + StatusText.age(
                  Duration.between(Instant.parse(a.connectedSince()), Instant.now()).toMillis())
              + (a.authenticatedAs() == null
                      || AgentAuthenticator.ANONYMOUS.equals(a.authenticatedAs())
                  ? ""
                  : ", authenticated by " + a.authenticatedAs())
              + ", last heard "
              + StatusText.age(a.lastHeardMillisAgo())
              + " ago, "
              + a.streams()
              + " stream(s) open";
      if (AgentAuthenticator.ANONYMOUS.equals(a.authenticatedAs())) {
        findings.warn(
            check,
            how
                + "; without credentials: the server requires none (no --agent-token-file,"
                + " --agent-client-ca or --authentication-audience), so anyone who reaches its"
                + " agent listener can speak for any node");
      } else if (a.draining()) {
        findings.warn(check, how + "; draining: it takes no new streams");
      } else if (a.lastHeardMillisAgo() > 60_000) {
        findings.warn(check, how + "; silent for over a minute: the link may be broken");
      } else {
        findings.ok(check, how);
      }
      if (!routez || "disabled".equals(status.mode())) {
        continue;
      }
      if (a.addresses() == null || a.addresses().isEmpty()) {
        findings.warn(check + " routes", "it declares no node address (--node-ip)");
        continue;
      }
      List<String> good = new ArrayList<>();
      List<String> bad = new ArrayList<>();
      for (String address : a.addresses()) {
        String hostPort =
            (address.indexOf(':') >= 0 ? "[" + address + "]" : address) + ":" + a.kubeletPort();
        try {
          AdminClient.Answer r =
              client.get("/routez?target=" + URLEncoder.encode(hostPort, StandardCharsets.UTF_8));
          if (r.status() == 404) {
            findings.warn("routes", "the server has no /routez: routes not checked");
            routez = false;
            break;
          }
          String answer = r.body().strip();
          if (answer.startsWith("via " + a.node())) {
            good.add(hostPort);
          } else {
            bad.add(hostPort + " goes " + answer);
          }
        } catch (AdminClient.AdminException e) {
          bad.add(hostPort + ": " + e.getMessage());
        }
      }
      if (!routez) {
        continue;
      }
      if (bad.isEmpty()) {
        findings.ok(check + " routes", "kubelet " + String.join(", ", good) + " via " + a.node());
      } else {
        findings.fail(
            check + " routes",
            String.join("; ", bad)
                + ", not through "
                + a.node()
                + "'s agent (another node declares the address, or the route source disagrees)");
      }
    }
    return status;
  }

  // ---- a target -------------------------------------------------------------------------------

  private void target(boolean serverUp) throws InterruptedException {
    if (serverUp) {
      try {
        AdminClient.Answer r =
            new AdminClient(admin)
                .get("/routez?target=" + URLEncoder.encode(target, StandardCharsets.UTF_8));
        String answer = r.body().strip();
        if (r.status() == 404) {
          findings.warn("target route", "the server has no /routez: route not checked");
        } else if (r.status() != 200) {
          findings.fail("target route", target + ": " + answer);
        } else if (answer.startsWith("no-agent") || answer.startsWith("rejected")) {
          findings.fail(
              "target route",
              target
                  + " would go "
                  + answer
                  + (answer.startsWith("no-agent")
                      ? ": the node's agent is not connected, so a CONNECT gets 503"
                      : ": a CONNECT gets 503"));
        } else {
          findings.ok("target route", target + " would go " + answer);
        }
      } catch (AdminClient.AdminException e) {
        findings.fail("target route", e.getMessage());
      }
    }
    dial();
  }

  private void dial() {
    String check = "target dial";
    String where = "";
    try {
      ConnectProbe.Answer a;
      if (cluster != null && cluster.udsName() != null || cluster == null && uds != null) {
        Path socket =
            cluster != null ? Path.of(cluster.udsName().replaceFirst("^unix://", "")) : uds;
        where = " through unix:" + socket;
        a = ConnectProbe.overUds(socket, target);
      } else {
        InetSocketAddress address;
        boolean tls;
        String serverName;
        if (cluster != null && cluster.url() != null) {
          URI url = URI.create(cluster.url());
          tls = "https".equals(url.getScheme());
          serverName = url.getHost();
          address =
              new InetSocketAddress(
                  serverName, url.getPort() >= 0 ? url.getPort() : (tls ? 443 : 80));
        } else {
          InetSocketAddress listen = Units.parseHostPort(connectListen);
          tls = tlsCert != null;
          String host =
              listen.getAddress() != null && listen.getAddress().isAnyLocalAddress()
                  ? "127.0.0.1"
                  : listen.getHostString();
          serverName = serverNames.isEmpty() ? host : serverNames.get(0);
          address = new InetSocketAddress(host, listen.getPort());
        }
        where = " through " + Addresses.text(address) + (tls ? " (TLS)" : "");
        ConnectProbe.Tls identity = null;
        if (tls) {
          identity = tlsIdentity(serverName);
          if (identity == null) {
            findings.fail(
                check,
                "cannot CONNECT over TLS without the apiserver's certificate and the server's CA:"
                    + " give --apiserver-cert, --apiserver-key and --ca (or --client-ca)");
            return;
          }
        }
        a = ConnectProbe.overTcp(address, identity, target);
      }
      String line =
          "CONNECT "
              + target
              + where
              + ": "
              + a.statusLine().substring(a.statusLine().indexOf(' ') + 1)
              + " in "
              + StatusText.age(a.nanos() / 1_000_000);
      if (a.status() == 200) {
        findings.ok(check, line);
      } else {
        findings.fail(check, line + (a.reason().isEmpty() ? "" : ": " + a.reason()));
      }
    } catch (Exception e) {
      findings.fail(
          check,
          "CONNECT "
              + target
              + where
              + " failed: "
              + (e.getMessage() == null ? e.toString() : e.getMessage()));
    }
  }

  private ConnectProbe.Tls tlsIdentity(String serverName) throws Exception {
    if (apiserverIdentity == null || apiserverIdentity[1] == null) {
      return null;
    }
    Path caFile = ca;
    if (caFile == null && cluster != null && cluster.caBundle() != null) {
      caFile = Path.of(cluster.caBundle());
    }
    if (caFile == null) {
      caFile = clientCa;
    }
    if (caFile == null) {
      return null;
    }
    List<X509Certificate> chain = readAll(apiserverIdentity[0]);
    PrivateKey key = Pki.readPrivateKey(apiserverIdentity[1]);
    return new ConnectProbe.Tls(
        serverName, chain.toArray(X509Certificate[]::new), key, readAll(caFile));
  }

  private static List<X509Certificate> readAll(Path file) throws Exception {
    try (var in = Files.newInputStream(file)) {
      List<X509Certificate> out = new ArrayList<>();
      for (var c :
          java.security.cert.CertificateFactory.getInstance("X.509").generateCertificates(in)) {
        out.add((X509Certificate) c);
      }
      return out;
    }
  }
}

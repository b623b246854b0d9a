package io.egresstunnel.server.certs;

import io.egresstunnel.proto.config.Units;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import org.bouncycastle.asn1.x509.GeneralName;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code tunnel-server certs}: a CA and every certificate a deployment needs, in one directory. */
@Command(
    name = "certs",
    header = "Create the CA, certificates and egress selector configurations of a deployment.",
    sortOptions = false,
    usageHelpWidth = 100,
    description = {
      "Creates a CA (or reuses ca.crt and ca.key in --dir), the server's certificate, the"
          + " kube-apiserver's client certificate and one client certificate per --node for the"
          + " agents, all ECDSA P-256, and the apiserver's EgressSelectorConfiguration for CONNECT"
          + " over TCP with mTLS and over a Unix socket.",
      "",
      "Writes into --dir: ca.crt ca.key server.crt server.key apiserver.crt apiserver.key"
          + " agent-NODE.crt agent-NODE.key egress-selector-tcp.yaml egress-selector-uds.yaml"
          + " egress-selector-grpc-uds.yaml."
          + " Keys are PKCS#8 PEM with mode 0600. An existing file is never replaced without"
          + " --force; an existing CA is always reused (delete ca.crt and ca.key for a new one).",
      "",
      "Durations take ms, s, m, h or d (365d, 8760h).",
      ""
    })
public final class CertsCommand implements Callable<Integer> {
  static final String CA_CRT = "ca.crt";
  static final String CA_KEY = "ca.key";
  static final String SERVER_CRT = "server.crt";
  static final String SERVER_KEY = "server.key";
  static final String APISERVER_CRT = "apiserver.crt";
  static final String APISERVER_KEY = "apiserver.key";
  static final String EGRESS_TCP = "egress-selector-tcp.yaml";
  static final String EGRESS_UDS = "egress-selector-uds.yaml";
  static final String EGRESS_GRPC_UDS = "egress-selector-grpc-uds.yaml";

  /** The server's default agent port (--agent-listen), for the agent command line printed. */
  private static final int AGENT_PORT =
      io.egresstunnel.proto.session.SessionPipeline.DEFAULT_AGENT_PORT;

  /** Longest validity accepted: a hundred years. */
  private static final Duration MAX_VALIDITY = Duration.ofDays(36_500);

  /** Kubernetes node names: lowercase RFC 1123 subdomains. They also name files here. */
  private static final Pattern NODE_NAME =
      Pattern.compile("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");

  @Spec CommandSpec spec;

  @Option(
      names = {"-h", "--help"},
      usageHelp = true,
      description = "Show this help and exit.")
  boolean help;

  @Option(
      names = "--dir",
      paramLabel = "DIR",
      required = true,
      description = "Where to write (created if missing).")
  Path dir;

  @Option(
      names = "--server-san",
      paramLabel = "NAME|IP",
      required = true,
      description =
          "A name or IP address the server is reached at (repeatable; IPs are recognised). The"
              + " first is the server certificate's CN and the host in egress-selector-tcp.yaml.")
  List<String> serverSans;

  @Option(
      names = "--node",
      paramLabel = "NAME",
      description =
          "A node to issue an agent client certificate for, CN=system:node:NAME, O=system:nodes"
              + " (repeatable).")
  List<String> nodes = new ArrayList<>();

  @Option(
      names = "--apiserver-cn",
      paramLabel = "CN",
      defaultValue = "kube-apiserver",
      description = "CN of the apiserver's client certificate. Default: ${DEFAULT-VALUE}.")
  String apiserverCn;

  @Option(
      names = "--validity",
      paramLabel = "DURATION",
      defaultValue = "365d",
      description =
          "Validity of the server, apiserver and agent certificates (never beyond the CA's)."
              + " Default: ${DEFAULT-VALUE}.")
  String validity;

  @Option(
      names = "--ca-validity",
      paramLabel = "DURATION",
      defaultValue = "3650d",
      description = "Validity of a new CA. Default: ${DEFAULT-VALUE}.")
  String caValidity;

  @Option(
      names = "--connect-port",
      paramLabel = "PORT",
      defaultValue = "8090",
      description =
          "Port of the CONNECT listener in egress-selector-tcp.yaml. Default: ${DEFAULT-VALUE}.")
  int connectPort;

  @Option(
      names = "--uds",
      paramLabel = "PATH",
      defaultValue = "/run/egress-tunnel/connect.sock",
      description = "Unix socket in egress-selector-uds.yaml. Default: ${DEFAULT-VALUE}.")
  Path uds;

  @Option(
      names = "--force",
      description = "Overwrite existing files (an existing CA is still reused).")
  boolean force;

  /**
   * Writes the files. A bad flag (IllegalArgumentException, exit 2) or a failure to write (exit 1)
   * propagates to the command's error handler (CommandErrors), which prints it as one line.
   */
  @Override
  public Integer call() throws IOException, GeneralSecurityException {
    PrintWriter out = spec.commandLine().getOut();
    run(out);
    out.flush();
    return 0;
  }

  private void run(PrintWriter out) throws IOException, GeneralSecurityException {
    Duration leafValidity = parseValidity("--validity", validity);
    Duration newCaValidity = parseValidity("--ca-validity", caValidity);
    List<GeneralName> sans = Pki.subjectAltNames(serverSans);
    List<String> nodeNames = nodeNames(nodes);
    if (connectPort < 1 || connectPort > 65535) {
      throw new IllegalArgumentException("--connect-port must be 1..65535, got " + connectPort);
    }
    if (!uds.isAbsolute()) {
      throw new IllegalArgumentException("--uds must be an absolute path, got " + uds);
    }
    if (apiserverCn.isBlank()) {
      throw new IllegalArgumentException("--apiserver-cn must not be empty");
    }
    String host = serverSans.get(0).trim();
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }

    OutputDirectory files = new OutputDirectory(dir, force);
    boolean reuseCa = files.exists(CA_CRT) && files.exists(CA_KEY);
    if (!reuseCa && (files.exists(CA_CRT) || files.exists(CA_KEY))) {
      String present = files.exists(CA_CRT) ? CA_CRT : CA_KEY;
      String missing = files.exists(CA_CRT) ? CA_KEY : CA_CRT;
      throw new IllegalArgumentException(
          files.resolve(present)
              + " exists but "
              + files.resolve(missing)
              + " does not; restore it, or delete "
              + present
              + " to create a new CA");
    }
    List<String> planned = new ArrayList<>();
    if (!reuseCa) {
      planned.add(CA_CRT);
      planned.add(CA_KEY);
    }
    planned.addAll(List.of(SERVER_CRT, SERVER_KEY, APISERVER_CRT, APISERVER_KEY));
    for (String n : nodeNames) {
      planned.add(agentCrt(n));
      planned.add(agentKey(n));
    }
    planned.add(EGRESS_TCP);
    planned.add(EGRESS_UDS);
    planned.add(EGRESS_GRPC_UDS);
    files.checkNoneExist(planned);

    Pki.Issued ca;
    if (reuseCa) {
      ca = Pki.loadCa(files.resolve(CA_CRT), files.resolve(CA_KEY));
      out.println(
          "Using the existing CA "
              + files.resolve(CA_CRT)
              + " ("
              + ca.certificate().getSubjectX500Principal().getName()
              + ", valid until "
              + ca.certificate().getNotAfter().toInstant()
              + ").");
    } else {
      ca = Pki.newCa("egress-tunnel-ca@" + Instant.now().getEpochSecond(), newCaValidity);
      files.writePrivate(CA_KEY, Pki.privateKeyPem(ca.key()));
      files.writePublic(CA_CRT, Pki.certificatePem(ca.certificate()));
      out.println("Created a new CA (" + ca.certificate().getSubjectX500Principal() + ").");
    }
    if (Instant.now().plus(leafValidity).isAfter(ca.certificate().getNotAfter().toInstant())) {
      out.println(
          "Note: the certificates expire with the CA, on "
              + ca.certificate().getNotAfter().toInstant()
              + ", before --validity "
              + validity
              + " is up.");
    }

    write(
        files,
        SERVER_CRT,
        SERVER_KEY,
        Pki.issue(ca, Pki.subject(host, null), Pki.Purpose.SERVER, sans, leafValidity));
    write(
        files,
        APISERVER_CRT,
        APISERVER_KEY,
        Pki.issue(ca, Pki.subject(apiserverCn, null), Pki.Purpose.CLIENT, List.of(), leafValidity));
    for (String n : nodeNames) {
      write(
          files,
          agentCrt(n),
          agentKey(n),
          Pki.issue(ca, Pki.nodeSubject(n), Pki.Purpose.CLIENT, List.of(), leafValidity));
    }
    String url = "https://" + hostForUrl(host) + ":" + connectPort;
    files.writePublic(
        EGRESS_TCP,
        EgressSelectorConfig.tcp(
                url,
                files.resolve(CA_CRT),
                files.resolve(APISERVER_CRT),
                files.resolve(APISERVER_KEY))
            .getBytes(StandardCharsets.UTF_8));
    files.writePublic(EGRESS_UDS, EgressSelectorConfig.uds(uds).getBytes(StandardCharsets.UTF_8));
    files.writePublic(
        EGRESS_GRPC_UDS, EgressSelectorConfig.grpcUds(uds).getBytes(StandardCharsets.UTF_8));

    printSummary(out, files, host, nodeNames);
  }

  private static void write(OutputDirectory files, String crt, String key, Pki.Issued issued)
      throws IOException {
    files.writePrivate(key, Pki.privateKeyPem(issued.key()));
    files.writePublic(crt, Pki.certificatePem(issued.certificate()));
  }

  private void printSummary(
      PrintWriter out, OutputDirectory files, String host, List<String> nodeNames) {
    out.println("Wrote:");
    for (Path p : files.written()) {
      out.println("  " + p);
    }
    String agentTls =
        " --agent-tls-cert "
            + files.resolve(SERVER_CRT)
            + " --agent-tls-key "
            + files.resolve(SERVER_KEY)
            + " --agent-client-ca "
            + files.resolve(CA_CRT);
    String listenHost = Pki.isIpAddress(host) ? hostForUrl(host) : "0.0.0.0";
    out.println();
    out.println("tunnel-server, CONNECT over TCP with mTLS (apiserver: " + EGRESS_TCP + "):");
    out.println(
        "  tunnel-server --connect-listen "
            + listenHost
            + ":"
            + connectPort
            + " --tls-cert "
            + files.resolve(SERVER_CRT)
            + " --tls-key "
            + files.resolve(SERVER_KEY)
            + " --client-ca "
            + files.resolve(CA_CRT)
            + " --client-allowed-names "
            + apiserverCn
            + agentTls);
    out.println(
        "tunnel-server, CONNECT or GRPC over a Unix socket (apiserver: "
            + EGRESS_UDS
            + " or "
            + EGRESS_GRPC_UDS
            + "):");
    out.println("  tunnel-server --connect-listen '' --uds " + uds + agentTls);
    out.println("kube-apiserver:");
    out.println(
        "  --egress-selector-config-file=" + files.resolve(EGRESS_TCP) + " (or the uds one)");
    for (String n : nodeNames) {
      out.println("tunnel-agent on node " + n + ":");
      out.println(
          "  tunnel-agent --server wss://"
              + hostForUrl(host)
              + ":"
              + AGENT_PORT
              + " --node-name "
              + n
              + " --ca-cert "
              + files.resolve(CA_CRT)
              + " --cert "
              + files.resolve(agentCrt(n))
              + " --key "
              + files.resolve(agentKey(n)));
    }
    if (nodeNames.isEmpty()) {
      out.println(
          "No --node given: no agent certificates. Run again with --node NAME to add some.");
    }
  }

  static String agentCrt(String node) {
    return "agent-" + node + ".crt";
  }

  static String agentKey(String node) {
    return "agent-" + node + ".key";
  }

  private static String hostForUrl(String host) {
    return host.indexOf(':') >= 0 ? "[" + host + "]" : host;
  }

  /** Node names, checked and without repeats, in the order given. */
  static List<String> nodeNames(List<String> names) {
    LinkedHashSet<String> unique = new LinkedHashSet<>();
    for (String n : names) {
      if (n.length() > 253 || !NODE_NAME.matcher(n).matches()) {
        throw new IllegalArgumentException(
            "--node " + n + ": not a node name (lowercase letters, digits, '-' and '.')");
      }
      unique.add(n);
    }
    return List.copyOf(unique);
  }

  /** A positive duration of at most 36500 days, in any form {@link Units} takes (365d, 8760h). */
  static Duration parseValidity(String flag, String text) {
    Duration d = Units.parsePositiveDuration(flag, text);
    if (d.compareTo(MAX_VALIDITY) > 0) {
      throw new IllegalArgumentException(flag + " must be from 1ms to 36500d, got " + text);
    }
    return d;
  }
}

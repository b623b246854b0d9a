package io.egresstunnel.agent;

import io.egresstunnel.agent.policy.AllowRule;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.config.CommandErrors;
import io.egresstunnel.proto.config.CommonOptions;
import io.egresstunnel.proto.config.ConfigSources;
import io.egresstunnel.proto.config.FileFlags;
import io.egresstunnel.proto.config.Lifecycle;
import io.egresstunnel.proto.config.Units;
import io.egresstunnel.proto.session.SessionPipeline;
import io.egresstunnel.routing.EgressMode;
import io.prometheus.metrics.instrumentation.jvm.JvmMetrics;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.net.InetAddress;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** Command line of tunnel-agent. */
@Command(
    name = "tunnel-agent",
    mixinStandardHelpOptions = true,
    subcommands = StatusCommand.class,
    sortOptions = false,
    usageHelpWidth = 100,
    version =
        "tunnel-agent 0.1.0 (protocol " + Limits.MIN_VERSION + ".." + Limits.MAX_VERSION + ")",
    description = {
      "Runs on every node. Keeps a websocket to each tunnel-server (reconnecting with backoff),"
          + " declares its node, and dials the targets the servers ask for when this node's"
          + " policy allows them: its addresses on the kubelet ports, its pod CIDRs in pod and"
          + " cluster modes, --allow rules, the networks it serves (--serve-cidr, --serve-host),"
          + " and with --default-route anything no node owns (Services, webhooks, names) but"
          + " loopback, link-local and multicast. Anything else is refused for that stream only.",
      "",
      "Durations take ms, s, m, h or d (10s); sizes take bytes, Ki or Mi (256Ki).",
      ""
    })
public final class TunnelAgentMain implements Callable<Integer> {
  /**
   * Environment variables that set flags: this, then the flag in capitals (docs/configuration.md).
   */
  static final String ENV_PREFIX = "EGRESS_TUNNEL_AGENT_";

  // --server and --node-name are required for running the agent, but not for its subcommands
  // (picocli would ask for them before `status`): call() checks them.
  @Option(
      names = "--server",
      paramLabel = "URL",
      split = ",",
      description =
          "Required. Server to tunnel to: ws://HOST:PORT or wss://HOST:PORT (repeatable, or"
              + " comma-separated); without :PORT, "
              + SessionPipeline.DEFAULT_AGENT_PORT
              + " (the server's default --agent-listen port) for ws:// and wss:// alike. One"
              + " load-balanced URL is enough: the agent connects through it until it holds a"
              + " tunnel to every server.")
  List<String> servers = new ArrayList<>();

  @Option(
      names = "--node-name",
      paramLabel = "NAME",
      description = "Required. The node this agent speaks for.")
  String nodeName;

  @Spec CommandSpec spec;

  @Option(
      names = "--node-ip",
      paramLabel = "IP",
      split = ",",
      description = "An address of this node, IPv4 or IPv6 (repeatable).")
  List<String> nodeIps = new ArrayList<>();

  @Option(
      names = "--pod-cidr",
      paramLabel = "CIDR",
      split = ",",
      description = "A pod CIDR of this node (repeatable).")
  List<String> podCidrs = new ArrayList<>();

  @Option(
      names = "--kubelet-port",
      defaultValue = "10250",
      description = "The kubelet's port on this node. Default: ${DEFAULT-VALUE}.")
  int kubeletPort;

  @Option(
      names = "--ca-cert",
      paramLabel = "PEM",
      description = "CA bundle that signs the servers' certificates (wss). Default: the JDK's.")
  Path caCert;

  @Option(
      names = "--token-file",
      paramLabel = "FILE",
      description =
          "A file holding the bearer token to present to the servers (--agent-token-file).")
  Path tokenFile;

  @Option(
      names = "--cert",
      paramLabel = "PEM",
      description =
          "Client certificate for wss (CN=system:node:NAME, signed by the server's"
              + " --agent-client-ca); needs --key.")
  Path cert;

  @Option(names = "--key", paramLabel = "PEM", description = "Private key of --cert (PKCS#8).")
  Path key;

  @Option(
      names = "--allow",
      paramLabel = "CIDR[:PORT[-PORT]]",
      split = ",",
      description = "Extra destination this agent may dial, e.g. 10.0.0.0/8:443 (repeatable).")
  List<String> allow = new ArrayList<>();

  @Option(
      names = "--default-route",
      description =
          "Offer to carry targets that no node owns (a Service's ClusterIP, a name such as"
              + " webhook.ns.svc, an external address) when the server's --default-route sends them"
              + " to agents: for a control plane outside the cluster network. Names are resolved"
              + " with this agent's resolver; loopback, link-local (cloud metadata) and multicast"
              + " addresses are refused unless --allow covers them.")
  boolean defaultRoute;

  @Option(
      names = "--serve-cidr",
      paramLabel = "CIDR",
      split = ",",
      description =
          "A network this agent serves besides its node (a site network behind it): the servers"
              + " route any port of any address in it here, in every mode but disabled; the"
              + " longest prefix wins (repeatable).")
  List<String> serveCidrs = new ArrayList<>();

  @Option(
      names = "--serve-host",
      paramLabel = "NAME",
      split = ",",
      description =
          "A host name this agent serves: the servers route it here on any port, and the agent"
              + " resolves it (repeatable).")
  List<String> serveHosts = new ArrayList<>();

  @Option(
      names = "--kubeconfig",
      paramLabel = "FILE",
      description =
          "Keep the allow-list current from the Kubernetes API: this node's addresses and kubelet"
              + " port, the IPs of the pods scheduled here (pod and cluster modes), hostNetwork"
              + " pods' TCP ports (pod mode) and --cluster-cidr (cluster mode).")
  Path kubeconfig;

  @Option(
      names = "--in-cluster",
      description = "As --kubeconfig, with the pod's service account (in-cluster configuration).")
  boolean inCluster;

  @Option(
      names = "--cluster-cidr",
      paramLabel = "CIDR",
      split = ",",
      description =
          "In cluster mode with the API: a cluster CIDR this agent may dial (repeatable).")
  List<String> clusterCidrs = new ArrayList<>();

  @Option(
      names = "--mode",
      defaultValue = "agent",
      description =
          "Egress selector mode, as on the server: pod and cluster also allow the pod CIDRs."
              + " Default: ${DEFAULT-VALUE}.")
  String mode;

  @Option(
      names = "--websocket-masking",
      defaultValue = "auto",
      description =
          "Mask frames sent to the server: auto (never on wss://; on ws:// only until the"
              + " server's hello agrees to unmasked frames), always (every frame, as RFC 6455"
              + " has it), never."
              + " Default: ${DEFAULT-VALUE}.")
  AgentConfig.Masking masking;

  @Option(
      names = "--initial-window",
      paramLabel = "SIZE",
      defaultValue = "512Ki",
      description = "Per-stream credit window granted to servers. Default: ${DEFAULT-VALUE}.")
  String initialWindow;

  @Option(
      names = "--max-frame-payload",
      paramLabel = "SIZE",
      defaultValue = "256Ki",
      description = "Largest frame body accepted from servers. Default: ${DEFAULT-VALUE}.")
  String maxFramePayload;

  @Option(
      names = "--max-streams",
      defaultValue = "10000",
      description = "Most concurrent streams per server. Default: ${DEFAULT-VALUE}.")
  int maxStreams;

  @Option(
      names = "--max-pending-dials",
      defaultValue = "10000",
      description =
          "Most dials in progress per server (a connecting socket each, about 1.6 KiB of heap);"
              + " the default absorbs a burst of 10000 dials at once. Default: ${DEFAULT-VALUE}.")
  int maxPendingDials;

  @Option(
      names = "--dial-timeout",
      paramLabel = "DURATION",
      defaultValue = "10s",
      description = "Default and largest time to connect a target. Default: ${DEFAULT-VALUE}.")
  String dialTimeout;

  @Option(
      names = "--handshake-timeout",
      paramLabel = "DURATION",
      defaultValue = "10s",
      description = "Time for connect, websocket upgrade and hello. Default: ${DEFAULT-VALUE}.")
  String handshakeTimeout;

  @Option(
      names = "--ping-interval",
      paramLabel = "DURATION",
      defaultValue = "15s",
      description = "Ping a quiet session this often. Default: ${DEFAULT-VALUE}.")
  String pingInterval;

  @Option(
      names = "--ping-timeout",
      paramLabel = "DURATION",
      defaultValue = "45s",
      description = "Close a session silent this long. Default: ${DEFAULT-VALUE}.")
  String pingTimeout;

  @Option(
      names = "--reconnect-max",
      paramLabel = "DURATION",
      defaultValue = "5s",
      description =
          "Longest reconnect delay: backoff starts at 100ms and doubles, each delay drawn from"
              + " [d/2, d] so that many agents do not reconnect at once. A restarted server has its"
              + " agents back within this long. Default: ${DEFAULT-VALUE}.")
  String reconnectMax;

  @Option(
      names = "--threads",
      defaultValue = "0",
      description = "Event loop threads; 0 means one per core. Default: ${DEFAULT-VALUE}.")
  int threads;

  @Option(
      names = "--sync-interval",
      paramLabel = "DURATION",
      defaultValue = "5s",
      description =
          "After reaching a server it already holds a tunnel to (through a load-balanced --server),"
              + " wait this long before connecting again; doubles up to --reconnect-max."
              + " Default: ${DEFAULT-VALUE}.")
  String syncInterval;

  @Option(
      names = "--grace-period",
      paramLabel = "DURATION",
      defaultValue = "20s",
      description =
          "On SIGTERM: go-away to every server (no new streams), and open streams may finish for"
              + " this long before they are closed. Keep it under the pod's"
              + " terminationGracePeriodSeconds. Default: ${DEFAULT-VALUE}.")
  String gracePeriod;

  @Option(
      names = "--admin-listen",
      paramLabel = "HOST:PORT",
      defaultValue = "127.0.0.1:8093",
      description =
          "Serve /healthz, /readyz (a session is established) and /metrics (Prometheus) here;"
              + " empty for none. Default: ${DEFAULT-VALUE}.")
  String adminListen;

  @Mixin CommonOptions common = new CommonOptions();

  /** The environment and config file behind the flags; set by {@link #commandLine}. */
  ConfigSources sources;

  public static void main(String[] args) {
    System.exit(commandLine().execute(args));
  }

  /** The command line exactly as {@link #main} runs it. */
  public static CommandLine commandLine() {
    return commandLine(new TunnelAgentMain());
  }

  /** The command line over {@code main}, set up exactly as the real entry point uses it. */
  static CommandLine commandLine(TunnelAgentMain main) {
    return commandLine(main, System.getenv());
  }

  /** As {@link #commandLine(TunnelAgentMain)}, with {@code env} as the environment. */
  static CommandLine commandLine(TunnelAgentMain main, Map<String, String> env) {
    CommandLine cl = CommandErrors.install(new CommandLine(main));
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    main.sources = ConfigSources.install(cl, ENV_PREFIX, env);
    return cl;
  }

  AgentConfig toConfig() {
    List<URI> uris = new ArrayList<>();
    for (String s : servers) {
      uris.add(AgentConfig.parseServer(s));
    }
    List<InetAddress> addresses = new ArrayList<>();
    for (String ip : nodeIps) {
      addresses.add(Cidr.parseAddress(ip));
    }
    List<Cidr> cidrs = new ArrayList<>();
    for (String c : podCidrs) {
      cidrs.add(Cidr.parse(c));
    }
    List<AllowRule> rules = new ArrayList<>();
    for (String a : allow) {
      rules.add(AllowRule.parse(a));
    }
    AgentConfig.Limits limits =
        new AgentConfig.Limits(
            Limits.checkWindow("--initial-window", Units.parseSize(initialWindow)),
            Limits.checkMaxFramePayload("--max-frame-payload", Units.parseSize(maxFramePayload)),
            Limits.check("--max-streams", maxStreams, 1, Integer.MAX_VALUE),
            Limits.check("--max-pending-dials", maxPendingDials, 1, Integer.MAX_VALUE),
            Units.parsePositiveDuration("--dial-timeout", dialTimeout),
            Units.parsePositiveDuration("--handshake-timeout", handshakeTimeout),
            Units.parsePositiveDuration("--ping-interval", pingInterval),
            Units.parsePositiveDuration("--ping-timeout", pingTimeout),
            Duration.ofMillis(100),
            Units.parsePositiveDuration("--reconnect-max", reconnectMax),
            Limits.check("--threads", threads, 0, 1024),
            Units.parsePositiveDuration("--sync-interval", syncInterval),
            Units.parsePositiveDuration("--grace-period", gracePeriod));
    Limits.checkName("--node-name", nodeName);
    return new AgentConfig(
        uris,
        nodeName,
        addresses,
        cidrs,
        Limits.check("--kubelet-port", kubeletPort, 1, 65535),
        caCert,
        rules,
        EgressMode.parse(mode),
        masking,
        limits,
        kubernetes(),
        new AgentConfig.Credentials(tokenFile, cert, key),
        adminListen.isEmpty() ? null : Units.parseHostPort(adminListen),
        new AgentConfig.Egress(
            defaultRoute,
            serveCidrs.stream().map(TunnelAgentMain::serveCidr).toList(),
            serveHosts));
  }

  private static Cidr serveCidr(String s) {
    try {
      return Cidr.parse(s);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("--serve-cidr " + s + ": " + e.getMessage(), e);
    }
  }

  private AgentConfig.Kubernetes kubernetes() {
    List<Cidr> clusterCidrList = new ArrayList<>();
    for (String c : clusterCidrs) {
      clusterCidrList.add(Cidr.parse(c));
    }
    if (kubeconfig != null && inCluster) {
      throw new IllegalArgumentException("--kubeconfig and --in-cluster exclude each other");
    }
    if (kubeconfig == null && !inCluster) {
      if (!clusterCidrList.isEmpty()) {
        throw new IllegalArgumentException("--cluster-cidr needs --kubeconfig or --in-cluster");
      }
      return null;
    }
    return new AgentConfig.Kubernetes(kubeconfig, clusterCidrList);
  }

  /**
   * Checks the files the flags name, so that a missing or unusable one is a usage error naming its
   * flag; what is in them beyond that is checked as the agent loads them.
   */
  void checkFiles() {
    FileFlags.certificates("--ca-cert", caCert);
    FileFlags.certificates("--cert", cert);
    FileFlags.privateKey("--key", key);
    FileFlags.readable("--token-file", tokenFile);
    FileFlags.readable("--kubeconfig", kubeconfig);
  }

  /**
   * Runs the agent until SIGTERM. A usage error (IllegalArgumentException) or a failure to start
   * (the admin listener cannot bind) propagates to {@link CommandErrors}, which prints it as one
   * line and picks the exit code.
   */
  @Override
  public Integer call() throws Exception {
    if (servers.isEmpty()) {
      throw new ParameterException(spec.commandLine(), "Missing required option: '--server=URL'");
    }
    if (nodeName == null) {
      throw new ParameterException(
          spec.commandLine(), "Missing required option: '--node-name=NAME'");
    }
    common.configureLogging();
    sources.logSources();
    common.configureTransport();
    AgentConfig config = toConfig();
    checkFiles();
    PrometheusRegistry metrics = new PrometheusRegistry();
    JvmMetrics.builder().register(metrics);
    TunnelAgent agent = new TunnelAgent(config, metrics).start();
    Duration grace = config.limits().gracePeriod();
    Lifecycle.runUntilSignalled(
        "tunnel-agent",
        () -> {
          agent.drain(grace);
          agent.close();
        });
    return 0;
  }
}

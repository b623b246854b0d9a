package io.egresstunnel.server;

import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.config.CommandErrors;
import io.egresstunnel.proto.config.CommonOptions;
import io.egresstunnel.proto.config.ConfigSources;
import io.egresstunnel.proto.config.FileFlags;
import io.egresstunnel.proto.config.Lifecycle;
import io.egresstunnel.proto.config.Units;
import io.egresstunnel.proto.net.TlsOptions;
import io.egresstunnel.proto.session.SessionPipeline;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.admin.StatusCommand;
import io.prometheus.metrics.instrumentation.jvm.JvmMetrics;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Command line of tunnel-server. */
@Command(
    name = "tunnel-server",
    mixinStandardHelpOptions = true,
    subcommands = {
      io.egresstunnel.server.certs.CertsCommand.class,
      StatusCommand.class,
      io.egresstunnel.server.doctor.DoctorCommand.class
    },
    sortOptions = false,
    usageHelpWidth = 100,
    version = "tunnel-server 0.1.0 (protocol " + Limits.MAX_VERSION + ")",
    description = {
      "Accepts HTTP CONNECT from the kube-apiserver's egress selector (TCP, TLS with client"
          + " certificates, or a Unix socket) and carries each connection as a stream over the"
          + " websocket of the agent on the target's node. Targets the mode does not send through"
          + " an agent are dialled directly.",
      "",
      "Durations take ms, s, m, h or d (10s); sizes take bytes, Ki or Mi (256Ki).",
      ""
    })
public final class TunnelServerMain implements Callable<Integer> {
  private static final Logger log = LoggerFactory.getLogger(TunnelServerMain.class);

  /**
   * Environment variables that set flags: this, then the flag in capitals (docs/configuration.md).
   */
  static final String ENV_PREFIX = "EGRESS_TUNNEL_SERVER_";

  @Option(
      names = "--mode",
      defaultValue = "agent",
      description =
          "Egress selector mode: disabled (dial everything directly), agent (kubelet connections"
              + " through the node's agent), pod (also the node's pod CIDRs), cluster (also pod"
              + " IPs and endpoints; from agent hellos alone it routes like pod). Default:"
              + " ${DEFAULT-VALUE}.")
  String mode;

  @Option(
      names = "--connect-listen",
      paramLabel = "HOST:PORT",
      defaultValue = "127.0.0.1:8090",
      description = "Where the apiserver sends CONNECT (TCP). Default: ${DEFAULT-VALUE}.")
  String connectListen;

  @Option(
      names = "--apiserver-protocol",
      paramLabel = "PROTOCOL",
      defaultValue = "auto",
      description =
          "What the CONNECT listeners (TCP, TLS and --uds) speak: auto (HTTP CONNECT and"
              + " Konnectivity's GRPC, told apart per connection; the apiserver's proxyProtocol"
              + " decides), http-connect, or grpc. A client of the other protocol is refused with"
              + " a message that says which to configure. Default: ${DEFAULT-VALUE}.")
  String apiserverProtocol;

  @Option(
      names = "--uds",
      paramLabel = "PATH",
      description =
          "Also accept CONNECT on this Unix socket (created with mode 0600, or 0660 with"
              + " --uds-group).")
  Path uds;

  @Option(
      names = "--uds-group",
      paramLabel = "GROUP",
      description = "Give this group read and write access to the --uds socket (mode 0660).")
  String udsGroup;

  @Option(
      names = "--agent-listen",
      paramLabel = "HOST:PORT",
      defaultValue = "0.0.0.0:" + SessionPipeline.DEFAULT_AGENT_PORT,
      description = "Where agents connect their websocket. Default: ${DEFAULT-VALUE}.")
  String agentListen;

  @Option(
      names = "--admin-listen",
      paramLabel = "HOST:PORT",
      defaultValue = "127.0.0.1:8092",
      description =
          "Admin endpoints: /healthz, /readyz, /routez, /status and /metrics (Prometheus); empty"
              + " for none."
              + " Default: ${DEFAULT-VALUE}.")
  String adminListen;

  @Option(
      names = "--tls-cert",
      paramLabel = "PEM",
      description =
          "Serve CONNECT over TLS with this certificate (needs --tls-key and --client-ca).")
  Path tlsCert;

  @Option(
      names = "--tls-key",
      paramLabel = "PEM",
      description = "Private key of --tls-cert (PKCS#8).")
  Path tlsKey;

  @Option(
      names = "--client-ca",
      paramLabel = "PEM",
      description = "CA bundle that must sign CONNECT clients' certificates (the apiserver's).")
  Path clientCa;

  @Option(
      names = "--client-allowed-names",
      paramLabel = "CN",
      split = ",",
      description =
          "Only CONNECT clients whose certificate CN is one of these (comma-separated; e.g."
              + " kube-apiserver) get a tunnel; others get 403. Default: any certificate --client-ca"
              + " signed.")
  List<String> clientAllowedNames = List.of();

  @Option(
      names = "--agent-tls-cert",
      paramLabel = "PEM",
      description = "Serve the agent listener as wss:// with this certificate.")
  Path agentTlsCert;

  @Option(
      names = "--agent-tls-key",
      paramLabel = "PEM",
      description = "Private key of --agent-tls-cert.")
  Path agentTlsKey;

  @Option(
      names = "--tls-min-version",
      paramLabel = "VERSION",
      defaultValue = TlsOptions.TLS12,
      description =
          "Oldest TLS version accepted on every TLS listener: VersionTLS12 or VersionTLS13."
              + " Default: ${DEFAULT-VALUE}.")
  String tlsMinVersion;

  @Option(
      names = "--tls-cipher-suites",
      paramLabel = "SUITE",
      split = ",",
      description =
          "Offer only these cipher suites (IANA names, comma-separated; name the TLS 1.3 suites"
              + " too if TLS 1.3 should stay possible). Default: AEAD suites with forward secrecy.")
  List<String> tlsCipherSuites = List.of();

  @Option(
      names = "--tls-reload-interval",
      paramLabel = "DURATION",
      defaultValue = "10s",
      description =
          "How often certificate, key and CA files are checked; changed files are loaded for new"
              + " connections without a restart. Default: ${DEFAULT-VALUE}.")
  String tlsReloadInterval;

  @Option(
      names = "--agent-client-ca",
      paramLabel = "PEM",
      description =
          "Agents may authenticate with a client certificate signed by this CA whose subject is"
              + " CN=system:node:NAME; it speaks for node NAME only. Needs --agent-tls-cert.")
  Path agentClientCa;

  @Option(
      names = "--authentication-audience",
      paramLabel = "AUDIENCE",
      split = ",",
      description =
          "Agents may authenticate with a Kubernetes ServiceAccount token issued for this audience,"
              + " checked with a TokenReview (needs --kubeconfig or --in-cluster). A token bound to"
              + " a pod speaks only for that pod's node.")
  List<String> authenticationAudience;

  @Option(
      names = "--agent-namespace",
      description = "With --agent-service-account: the only ServiceAccount whose tokens admit.")
  String agentNamespace;

  @Option(
      names = "--agent-service-account",
      description = "With --agent-namespace: the only ServiceAccount whose tokens admit.")
  String agentServiceAccount;

  @Option(
      names = "--authentication-cache-ttl",
      paramLabel = "DURATION",
      defaultValue = "30s",
      description =
          "How long a TokenReview verdict is reused for the same token. Default: ${DEFAULT-VALUE}.")
  String authenticationCacheTtl;

  @Option(
      names = "--kubeconfig",
      paramLabel = "FILE",
      description =
          "Take routes from the Kubernetes API (Nodes; in cluster mode also Pods and"
              + " EndpointSlices) through this kubeconfig. Without it, routes come from what agents"
              + " declare.")
  Path kubeconfig;

  @Option(
      names = "--in-cluster",
      description = "As --kubeconfig, with the pod's service account (in-cluster configuration).")
  boolean inCluster;

  @Option(
      names = "--node-name",
      description =
          "The node this server runs on, if it is one: its targets are dialled directly, as K3s"
              + " does. Needs --kubeconfig or --in-cluster.")
  String nodeName;

  @Option(
      names = "--agent-token-file",
      paramLabel = "FILE",
      description =
          "Agents must present one of these bearer tokens at the websocket upgrade (401"
              + " otherwise). One token per line, optionally followed by the nodes it may speak"
              + " for: 'TOKEN node-a,node-b' (403 for any other node).")
  Path agentTokenFile;

  @Option(
      names = "--server-id",
      description =
          "This server's id among the cluster's servers; each server needs its own (an agent"
              + " holds one tunnel per id). Default: the host name and the --agent-listen port,"
              + " e.g. myhost-8091, so that servers on one host differ.")
  String serverId;

  @Option(
      names = "--server-count",
      defaultValue = "1",
      description =
          "How many servers serve the cluster (agents keep a tunnel to each). Default: ${DEFAULT-VALUE}.")
  int serverCount;

  @Option(
      names = "--initial-window",
      paramLabel = "SIZE",
      defaultValue = "512Ki",
      description = "Per-stream credit window granted to agents. Default: ${DEFAULT-VALUE}.")
  String initialWindow;

  @Option(
      names = "--max-frame-payload",
      paramLabel = "SIZE",
      defaultValue = "256Ki",
      description =
          "Largest frame body accepted from agents (16Ki..16Mi-1). Default: ${DEFAULT-VALUE}.")
  String maxFramePayload;

  @Option(
      names = "--max-streams-per-agent",
      defaultValue = "10000",
      description = "Most concurrent streams on one agent. Default: ${DEFAULT-VALUE}.")
  int maxStreamsPerAgent;

  @Option(
      names = "--max-pending-dials-per-agent",
      defaultValue = "10000",
      description =
          "Most dials waiting for one agent; more get 503. The default absorbs a burst of 10000"
              + " dials at once; each pending dial holds about 2.4 KiB of heap"
              + " (docs/reliability.md). Default: ${DEFAULT-VALUE}.")
  int maxPendingDials;

  @Option(
      names = "--max-agents",
      defaultValue = "10000",
      description =
          "Most agent sessions at once; further upgrades get 503. Default: ${DEFAULT-VALUE}.")
  int maxAgents;

  @Option(
      names = "--departed-node-ttl",
      paramLabel = "DURATION",
      defaultValue = "1h",
      description =
          "Without the Kubernetes API: how long a node stays known after its last agent left;"
              + " its kubelet targets get 503 (no agent connected) meanwhile, never a direct dial."
              + " Default: ${DEFAULT-VALUE}.")
  String departedNodeTtl;

  @Option(
      names = "--max-departed-nodes",
      defaultValue = "10000",
      description =
          "The most nodes remembered without an agent; the longest gone are forgotten first."
              + " Default: ${DEFAULT-VALUE}.")
  int maxDepartedNodes;

  @Option(
      names = "--fallback-direct",
      description =
          "Dial a target directly when the mode routes it through an agent and its node has none"
              + " connected (K3s's behaviour, for a server that is itself a node). Off by default:"
              + " it bypasses the tunnel; each such dial is counted in"
              + " egress_tunnel_server_fallback_direct_dials_total.")
  boolean fallbackDirect;

  @Option(
      names = "--default-route",
      paramLabel = "POLICY",
      defaultValue = "auto",
      description =
          "Where a target goes that no node owns and no agent serves (a Service's ClusterIP, a"
              + " name such as webhook.ns.svc, an external address): direct (the server dials it,"
              + " as K3s does), agents (through an agent started with --default-route; 503 when"
              + " none is connected), reject (503 at once), or auto: agents while any agent offers"
              + " a default route, direct when none ever did. Default: ${DEFAULT-VALUE}.")
  String defaultRoute;

  @Option(
      names = "--dial-timeout",
      paramLabel = "DURATION",
      defaultValue = "10s",
      description = "How long a target may take to connect; then 504. Default: ${DEFAULT-VALUE}.")
  String dialTimeout;

  @Option(
      names = "--max-header-bytes",
      paramLabel = "SIZE",
      defaultValue = "8Ki",
      description = "Largest CONNECT header block; more gets 431. Default: ${DEFAULT-VALUE}.")
  String maxHeaderBytes;

  @Option(
      names = "--connect-read-timeout",
      paramLabel = "DURATION",
      defaultValue = "10s",
      description =
          "A client must send its whole CONNECT request within this time, or gets 408 (slowloris)."
              + " Default: ${DEFAULT-VALUE}.")
  String connectReadTimeout;

  @Option(
      names = "--handshake-timeout",
      paramLabel = "DURATION",
      defaultValue = "10s",
      description =
          "Time an agent has for the websocket upgrade and hello. Default: ${DEFAULT-VALUE}.")
  String handshakeTimeout;

  @Option(
      names = "--ping-interval",
      paramLabel = "DURATION",
      defaultValue = "15s",
      description = "Ping a quiet agent session this often. Default: ${DEFAULT-VALUE}.")
  String pingInterval;

  @Option(
      names = "--ping-timeout",
      paramLabel = "DURATION",
      defaultValue = "45s",
      description = "Close an agent session silent this long. Default: ${DEFAULT-VALUE}.")
  String pingTimeout;

  @Option(
      names = "--listen-backlog",
      defaultValue = "4096",
      description =
          "Accept backlog of every listener (bursts of CONNECTs). Default: ${DEFAULT-VALUE}.")
  int backlog;

  @Option(
      names = "--grace-period",
      paramLabel = "DURATION",
      defaultValue = "20s",
      description =
          "On SIGTERM: /readyz turns false, new CONNECTs and agents get 503, agents get a"
              + " go-away, and open streams may finish for this long before they are closed."
              + " Keep it under the pod's terminationGracePeriodSeconds. Default: ${DEFAULT-VALUE}.")
  String gracePeriod;

  @Option(
      names = "--ready-min-agents",
      defaultValue = "0",
      description =
          "/readyz stays false until this many agents are connected. Default: ${DEFAULT-VALUE}.")
  int readyMinAgents;

  @Option(
      names = "--threads",
      defaultValue = "0",
      description = "Event loop threads; 0 means one per core. Default: ${DEFAULT-VALUE}.")
  int threads;

  @Mixin CommonOptions common = new CommonOptions();

  /** The environment and config file behind the flags; set by {@link #commandLine}. */
  ConfigSources sources;

  public static void main(String[] args) {
    System.exit(commandLine().execute(args));
  }

  static CommandLine commandLine() {
    return commandLine(new TunnelServerMain());
  }

  /** The command line over {@code main}, set up exactly as the real entry point uses it. */
  static CommandLine commandLine(TunnelServerMain main) {
    return commandLine(main, System.getenv());
  }

  /** As {@link #commandLine(TunnelServerMain)}, with {@code env} as the environment. */
  public static CommandLine commandLine(TunnelServerMain main, Map<String, String> env) {
    CommandLine cl = CommandErrors.install(new CommandLine(main));
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    main.sources = ConfigSources.install(cl, ENV_PREFIX, env);
    return cl;
  }

  /** Builds the configuration the flags describe; IllegalArgumentException says which is wrong. */
  ServerConfig toConfig() throws Exception {
    ServerConfig.TlsFiles tls = null;
    if (tlsCert != null || tlsKey != null || clientCa != null) {
      if (tlsCert == null || tlsKey == null || clientCa == null) {
        throw new IllegalArgumentException(
            "TLS on the CONNECT listener needs --tls-cert, --tls-key and --client-ca together");
      }
      tls = new ServerConfig.TlsFiles(tlsCert, tlsKey, clientCa);
    }
    ServerConfig.TlsFiles agentTls = null;
    if (agentTlsCert != null || agentTlsKey != null) {
      if (agentTlsCert == null || agentTlsKey == null) {
        throw new IllegalArgumentException(
            "wss needs --agent-tls-cert and --agent-tls-key together");
      }
      agentTls = new ServerConfig.TlsFiles(agentTlsCert, agentTlsKey, null);
    }
    ServerConfig.Limits limits =
        new ServerConfig.Limits(
            Limits.checkWindow("--initial-window", Units.parseSize(initialWindow)),
            Limits.checkMaxFramePayload("--max-frame-payload", Units.parseSize(maxFramePayload)),
            Limits.check("--max-streams-per-agent", maxStreamsPerAgent, 1, Integer.MAX_VALUE),
            Limits.check("--max-pending-dials-per-agent", maxPendingDials, 1, Integer.MAX_VALUE),
            Limits.check("--max-agents", maxAgents, 1, Integer.MAX_VALUE),
            Units.parsePositiveDuration("--dial-timeout", dialTimeout),
            Limits.check("--max-header-bytes", Units.parseSize(maxHeaderBytes), 256, 1 << 20),
            4096,
            Units.parsePositiveDuration("--connect-read-timeout", connectReadTimeout),
            Units.parsePositiveDuration("--handshake-timeout", handshakeTimeout),
            Units.parsePositiveDuration("--ping-interval", pingInterval),
            Units.parsePositiveDuration("--ping-timeout", pingTimeout),
            Limits.check("--listen-backlog", backlog, 1, 65535),
            Limits.check("--threads", threads, 0, 1024),
            Units.parsePositiveDuration("--grace-period", gracePeriod),
            Limits.check("--ready-min-agents", readyMinAgents, 0, Integer.MAX_VALUE));
    InetSocketAddress connect = connectListen.isEmpty() ? null : Units.parseHostPort(connectListen);
    ServerConfig.Kubernetes kubernetes = kubernetes();
    return new ServerConfig(
        EgressMode.parse(mode),
        connect,
        uds,
        Units.parseHostPort(agentListen),
        adminListen.isEmpty() ? null : Units.parseHostPort(adminListen),
        tls,
        agentTls,
        serverId != null
            ? serverId
            : ServerConfig.defaultServerId(Units.parseHostPort(agentListen)),
        Limits.check("--server-count", serverCount, 1, 0xFFFF),
        limits,
        kubernetes,
        security(kubernetes),
        new ServerConfig.Routing(
            Units.parsePositiveDuration("--departed-node-ttl", departedNodeTtl),
            Limits.check("--max-departed-nodes", maxDepartedNodes, 0, Integer.MAX_VALUE),
            fallbackDirect,
            ServerConfig.DefaultRoute.parse(defaultRoute)),
        ServerConfig.ApiserverProtocol.parse(apiserverProtocol));
  }

  private ServerConfig.Security security(ServerConfig.Kubernetes kubernetes) {
    if (!clientAllowedNames.isEmpty() && clientCa == null) {
      throw new IllegalArgumentException("--client-allowed-names needs --client-ca");
    }
    if (udsGroup != null && uds == null) {
      throw new IllegalArgumentException("--uds-group needs --uds");
    }
    if (agentClientCa != null && agentTlsCert == null) {
      throw new IllegalArgumentException(
          "--agent-client-ca needs --agent-tls-cert and --agent-tls-key");
    }
    ServerConfig.TokenReview review = null;
    if (authenticationAudience != null) {
      if (kubernetes == null) {
        throw new IllegalArgumentException(
            "--authentication-audience needs --kubeconfig or --in-cluster (TokenReviews go to"
                + " the Kubernetes API)");
      }
      review =
          new ServerConfig.TokenReview(
              authenticationAudience.stream().filter(a -> !a.isBlank()).toList(),
              agentNamespace,
              agentServiceAccount,
              Units.parsePositiveDuration("--authentication-cache-ttl", authenticationCacheTtl));
    } else if (agentNamespace != null || agentServiceAccount != null) {
      throw new IllegalArgumentException(
          "--agent-namespace and --agent-service-account need --authentication-audience");
    }
    return new ServerConfig.Security(
        new ServerConfig.AgentAuth(agentTokenFile, agentClientCa, review),
        new TlsOptions(
            tlsMinVersion,
            tlsCipherSuites,
            Units.parsePositiveDuration("--tls-reload-interval", tlsReloadInterval)),
        udsGroup,
        clientAllowedNames);
  }

  private ServerConfig.Kubernetes kubernetes() {
    if (kubeconfig != null && inCluster) {
      throw new IllegalArgumentException("--kubeconfig and --in-cluster exclude each other");
    }
    if (kubeconfig == null && !inCluster) {
      if (nodeName != null) {
        throw new IllegalArgumentException("--node-name needs --kubeconfig or --in-cluster");
      }
      return null;
    }
    return new ServerConfig.Kubernetes(kubeconfig, nodeName);
  }

  /**
   * Checks the files the flags name, so that a missing or unusable one is a usage error naming its
   * flag; what is in them beyond that is checked as the server loads them.
   */
  void checkFiles() {
    FileFlags.certificates("--tls-cert", tlsCert);
    FileFlags.privateKey("--tls-key", tlsKey);
    FileFlags.certificates("--client-ca", clientCa);
    FileFlags.certificates("--agent-tls-cert", agentTlsCert);
    FileFlags.privateKey("--agent-tls-key", agentTlsKey);
    FileFlags.certificates("--agent-client-ca", agentClientCa);
    FileFlags.readable("--agent-token-file", agentTokenFile);
    FileFlags.readable("--kubeconfig", kubeconfig);
  }

  /**
   * Runs the server until SIGTERM. A usage error (IllegalArgumentException) or a failure to start
   * (an IOException, such as a listener that cannot bind) propagates to {@link CommandErrors},
   * which prints it as one line and picks the exit code.
   */
  @Override
  public Integer call() throws Exception {
    common.configureLogging();
    sources.logSources();
    common.configureTransport();
    ServerConfig config = toConfig();
    checkFiles();
    PrometheusRegistry metrics = new PrometheusRegistry();
    JvmMetrics.builder().register(metrics);
    TunnelServer server = new TunnelServer(config, metrics);
    server.start();
    Duration grace = config.limits().gracePeriod();
    Lifecycle.runUntilSignalled(
        "tunnel-server",
        () -> {
          server.drain(grace);
          server.close();
        });
    return 0;
  }
}

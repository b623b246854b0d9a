package io.egresstunnel.server;

import io.egresstunnel.proto.net.TlsOptions;
import io.egresstunnel.routing.EgressMode;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * Everything tunnel-server is configured with. Built by {@link TunnelServerMain} from flags, or
 * directly by tests.
 *
 * @param mode what goes through agents
 * @param connectListen TCP address of the CONNECT listener, or null for none
 * @param udsPath Unix socket path of the CONNECT listener, or null for none
 * @param agentListen address agents connect to
 * @param adminListen address of the health endpoints, or null for none
 * @param tls TLS for the CONNECT listener (client certificates required), or null for plain TCP
 * @param agentTls TLS for the agent listener (wss), or null for plain ws
 * @param serverId this server's id among the cluster's servers
 * @param serverCount how many servers serve the cluster
 * @param limits every limit the server enforces
 * @param kubernetes where routes come from the Kubernetes API, or null for agent hellos
 * @param security agent authentication, TLS versions and suites, Unix socket access
 * @param routing what happens to targets whose node has no agent connected
 * @param apiserverProtocol which protocols the CONNECT listeners speak
 */
public record ServerConfig(
    EgressMode mode,
    InetSocketAddress connectListen,
    Path udsPath,
    InetSocketAddress agentListen,
    InetSocketAddress adminListen,
    TlsFiles tls,
    TlsFiles agentTls,
    String serverId,
    int serverCount,
    Limits limits,
    Kubernetes kubernetes,
    Security security,
    Routing routing,
    ApiserverProtocol apiserverProtocol) {

  /**
   * The server id when none is given: this host's name and the agent listener's port ({@code
   * myhost-8091}), so that two servers on one host, which must listen on different ports, get
   * different ids.
   */
  public static String defaultServerId(InetSocketAddress agentListen)
      throws java.net.UnknownHostException {
    return java.net.InetAddress.getLocalHost().getHostName() + "-" + agentListen.getPort();
  }

  /** A config with the default {@link Routing}. */
  public ServerConfig(
      EgressMode mode,
      InetSocketAddress connectListen,
      Path udsPath,
      InetSocketAddress agentListen,
      InetSocketAddress adminListen,
      TlsFiles tls,
      TlsFiles agentTls,
      String serverId,
      int serverCount,
      Limits limits,
      Kubernetes kubernetes,
      Security security) {
    this(
        mode,
        connectListen,
        udsPath,
        agentListen,
        adminListen,
        tls,
        agentTls,
        serverId,
        serverCount,
        limits,
        kubernetes,
        security,
        Routing.defaults(),
        ApiserverProtocol.AUTO);
  }

  /**
   * The protocols the apiserver may speak on the CONNECT listeners: both, told apart per connection
   * by its first bytes (the default), or one alone; a client of the other gets a clear refusal in
   * its own protocol.
   */
  public enum ApiserverProtocol {
    AUTO,
    HTTP_CONNECT,
    GRPC;

    /** The flag's spelling. */
    public String flagValue() {
      return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
    }

    public static ApiserverProtocol parse(String s) {
      for (ApiserverProtocol p : values()) {
        if (p.flagValue().equalsIgnoreCase(s.trim())) {
          return p;
        }
      }
      throw new IllegalArgumentException(
          "--apiserver-protocol " + s + " is not one of auto, http-connect, grpc");
    }

    public boolean servesConnect() {
      return this != GRPC;
    }

    public boolean servesGrpc() {
      return this != HTTP_CONNECT;
    }
  }

  public ServerConfig withApiserverProtocol(ApiserverProtocol p) {
    return with(f -> f.apiserverProtocol = p);
  }

  /**
   * Targets that the mode sends through an agent, when that node has none connected.
   *
   * @param departedNodeTtl how long a node declared by an agent (routing without the Kubernetes
   *     API) is remembered after its last agent left; its targets get 503 meanwhile
   * @param maxDepartedNodes the most such nodes remembered; beyond it the longest gone are
   *     forgotten first
   * @param fallbackDirect dial such targets directly instead of answering 503 (for a server that is
   *     itself a node, as K3s does); off by default, because it bypasses the tunnel
   * @param defaultRoute what happens to a target that no node owns and no agent serves
   */
  public record Routing(
      Duration departedNodeTtl,
      int maxDepartedNodes,
      boolean fallbackDirect,
      DefaultRoute defaultRoute) {
    public Routing {
      if (departedNodeTtl.isNegative() || departedNodeTtl.isZero()) {
        throw new IllegalArgumentException("--departed-node-ttl must be positive");
      }
      io.egresstunnel.proto.Limits.check(
          "--max-departed-nodes", maxDepartedNodes, 0, Integer.MAX_VALUE);
      java.util.Objects.requireNonNull(defaultRoute, "defaultRoute");
    }

    /** With the default {@link DefaultRoute#AUTO}. */
    public Routing(Duration departedNodeTtl, int maxDepartedNodes, boolean fallbackDirect) {
      this(departedNodeTtl, maxDepartedNodes, fallbackDirect, DefaultRoute.AUTO);
    }

    public static Routing defaults() {
      return new Routing(Duration.ofHours(1), 10_000, false);
    }

    public Routing withDefaultRoute(DefaultRoute d) {
      return new Routing(departedNodeTtl, maxDepartedNodes, fallbackDirect, d);
    }
  }

  /**
   * {@code --default-route}: where a target goes that the mode routes to no node and no agent
   * declares as its network (a Service's ClusterIP, a name such as {@code webhook.ns.svc}, an
   * external address).
   */
  public enum DefaultRoute {
    /**
     * Through the agents that offer a default route while any is connected (or left less than
     * {@code --departed-node-ttl} ago: then 503, never a silent direct dial); directly otherwise.
     */
    AUTO,
    /** The server dials it itself (K3s's behaviour). */
    DIRECT,
    /** Through an agent that offers a default route ({@code tunnel-agent --default-route}). */
    AGENTS,
    /** Refused at once with 503. */
    REJECT;

    public String flagValue() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }

    public static DefaultRoute parse(String s) {
      for (DefaultRoute d : values()) {
        if (d.flagValue().equalsIgnoreCase(s.trim())) {
          return d;
        }
      }
      throw new IllegalArgumentException(
          "--default-route " + s + " is not one of auto, direct, agents, reject");
    }
  }

  public ServerConfig withRouting(Routing newRouting) {
    return with(f -> f.routing = newRouting);
  }

  /**
   * Who may connect, and how TLS is set up.
   *
   * @param agentAuth how agents prove which node they speak for
   * @param tls TLS versions, suites and certificate reloading of every listener
   * @param udsGroup a group given read and write access to the Unix socket (mode 0660), or null for
   *     owner only (0600)
   * @param clientAllowedNames the CNs a CONNECT client certificate may have (empty: any the client
   *     CA signed)
   */
  public record Security(
      AgentAuth agentAuth, TlsOptions tls, String udsGroup, List<String> clientAllowedNames) {
    public Security {
      clientAllowedNames = List.copyOf(clientAllowedNames);
    }

    public static Security defaults() {
      return new Security(AgentAuth.NONE, TlsOptions.defaults(), null, List.of());
    }

    public Security withAgentAuth(AgentAuth auth) {
      return new Security(auth, tls, udsGroup, clientAllowedNames);
    }

    public Security withTls(TlsOptions options) {
      return new Security(agentAuth, options, udsGroup, clientAllowedNames);
    }

    public Security withUdsGroup(String group) {
      return new Security(agentAuth, tls, group, clientAllowedNames);
    }

    public Security withClientAllowedNames(List<String> names) {
      return new Security(agentAuth, tls, udsGroup, names);
    }
  }

  /**
   * The ways an agent may authenticate at the websocket upgrade; any configured one admits it. With
   * none configured, every agent is admitted for the node it names.
   *
   * @param tokenFile static bearer tokens with the nodes each may speak for, or null
   * @param clientCa CA that signs agents' client certificates ({@code CN=system:node:NAME}), or
   *     null; needs wss
   * @param tokenReview ServiceAccount tokens checked with the Kubernetes API, or null
   */
  public record AgentAuth(Path tokenFile, Path clientCa, TokenReview tokenReview) {
    public static final AgentAuth NONE = new AgentAuth(null, null, null);

    public boolean required() {
      return tokenFile != null || clientCa != null || tokenReview != null;
    }
  }

  /**
   * ServiceAccount tokens, checked with a TokenReview.
   *
   * @param audiences the audiences a token must be issued for (empty: the API server's default)
   * @param namespace with {@code serviceAccount}, the only ServiceAccount admitted, or null: any
   * @param serviceAccount the ServiceAccount's name, or null
   * @param cacheTtl how long a review's verdict is reused for the same token
   */
  public record TokenReview(
      List<String> audiences, String namespace, String serviceAccount, Duration cacheTtl) {
    public TokenReview {
      audiences = List.copyOf(audiences);
      if ((namespace == null) != (serviceAccount == null)) {
        throw new IllegalArgumentException(
            "--agent-namespace and --agent-service-account go together");
      }
    }
  }

  /**
   * Routing from the Kubernetes API.
   *
   * @param kubeconfig the kubeconfig file, or null for in-cluster configuration
   * @param ownNode the node this server runs on, or null; its targets are dialled directly
   */
  public record Kubernetes(Path kubeconfig, String ownNode) {}

  /** PEM files for a TLS listener; {@code clientCa} non-null requires client certificates. */
  public record TlsFiles(Path cert, Path key, Path clientCa) {}

  /**
   * The server's limits.
   *
   * @param initialWindow per-stream credit granted to agents
   * @param maxFramePayload largest frame body accepted from agents
   * @param maxStreamsPerAgent most concurrent streams on one agent
   * @param maxPendingDialsPerAgent most dials waiting for one agent
   * @param maxAgents most agent sessions connected at once
   * @param dialTimeout how long an agent may take to connect a target
   * @param maxHeaderBytes largest CONNECT request header block
   * @param maxRequestLine longest CONNECT request line
   * @param connectReadTimeout how long a client may take to send its whole CONNECT request
   * @param handshakeTimeout how long an agent may take for the websocket upgrade and hello
   * @param pingInterval how often a quiet session is pinged
   * @param pingTimeout how long a session may stay silent before it is closed
   * @param listenBacklog the accept backlog of every listener
   * @param threads event loop threads (0: one per core)
   * @param gracePeriod how long open streams may go on after SIGTERM before they are closed
   * @param readyMinAgents agents that must be connected before /readyz says ready
   */
  public record Limits(
      int initialWindow,
      int maxFramePayload,
      int maxStreamsPerAgent,
      int maxPendingDialsPerAgent,
      int maxAgents,
      Duration dialTimeout,
      int maxHeaderBytes,
      int maxRequestLine,
      Duration connectReadTimeout,
      Duration handshakeTimeout,
      Duration pingInterval,
      Duration pingTimeout,
      int listenBacklog,
      int threads,
      Duration gracePeriod,
      int readyMinAgents) {

    public Limits withDialTimeout(Duration timeout) {
      return new Limits(
          initialWindow,
          maxFramePayload,
          maxStreamsPerAgent,
          maxPendingDialsPerAgent,
          maxAgents,
          timeout,
          maxHeaderBytes,
          maxRequestLine,
          connectReadTimeout,
          handshakeTimeout,
          pingInterval,
          pingTimeout,
          listenBacklog,
          threads,
          gracePeriod,
          readyMinAgents);
    }

    public Limits withMaxPendingDialsPerAgent(int max) {
      return new Limits(
          initialWindow,
          maxFramePayload,
          maxStreamsPerAgent,
          max,
          maxAgents,
          dialTimeout,
          maxHeaderBytes,
          maxRequestLine,
          connectReadTimeout,
          handshakeTimeout,
          pingInterval,
          pingTimeout,
          listenBacklog,
          threads,
          gracePeriod,
          readyMinAgents);
    }

    public Limits withMaxAgents(int max) {
      return new Limits(
          initialWindow,
          maxFramePayload,
          maxStreamsPerAgent,
          maxPendingDialsPerAgent,
          max,
          dialTimeout,
          maxHeaderBytes,
          maxRequestLine,
          connectReadTimeout,
          handshakeTimeout,
          pingInterval,
          pingTimeout,
          listenBacklog,
          threads,
          gracePeriod,
          readyMinAgents);
    }

    public Limits withDrain(Duration grace, int minAgentsForReady) {
      return new Limits(
          initialWindow,
          maxFramePayload,
          maxStreamsPerAgent,
          maxPendingDialsPerAgent,
          maxAgents,
          dialTimeout,
          maxHeaderBytes,
          maxRequestLine,
          connectReadTimeout,
          handshakeTimeout,
          pingInterval,
          pingTimeout,
          listenBacklog,
          threads,
          grace,
          minAgentsForReady);
    }

    public Limits withConnectReadTimeout(Duration timeout) {
      return new Limits(
          initialWindow,
          maxFramePayload,
          maxStreamsPerAgent,
          maxPendingDialsPerAgent,
          maxAgents,
          dialTimeout,
          maxHeaderBytes,
          maxRequestLine,
          timeout,
          handshakeTimeout,
          pingInterval,
          pingTimeout,
          listenBacklog,
          threads,
          gracePeriod,
          readyMinAgents);
    }

    public Limits withPing(Duration interval, Duration timeout) {
      return new Limits(
          initialWindow,
          maxFramePayload,
          maxStreamsPerAgent,
          maxPendingDialsPerAgent,
          maxAgents,
          dialTimeout,
          maxHeaderBytes,
          maxRequestLine,
          connectReadTimeout,
          handshakeTimeout,
          interval,
          timeout,
          listenBacklog,
          threads,
          gracePeriod,
          readyMinAgents);
    }

    /** The defaults behind the flags. */
    public static Limits defaults() {
      return new Limits(
          io.egresstunnel.proto.Limits.DEFAULT_INITIAL_WINDOW,
          io.egresstunnel.proto.Limits.DEFAULT_MAX_FRAME_PAYLOAD,
          10_000,
          10_000,
          10_000,
          Duration.ofSeconds(10),
          8 * 1024,
          4 * 1024,
          Duration.ofSeconds(10),
          Duration.ofSeconds(10),
          Duration.ofSeconds(15),
          Duration.ofSeconds(45),
          4096,
          0,
          Duration.ofSeconds(20),
          0);
    }
  }

  /** A plain-TCP config on the given addresses with default limits (tests, local use). */
  public static ServerConfig plain(
      EgressMode mode, InetSocketAddress connectListen, InetSocketAddress agentListen) {
    return new ServerConfig(
        mode,
        connectListen,
        null,
        agentListen,
        null,
        null,
        null,
        "server-1",
        1,
        Limits.defaults(),
        null,
        Security.defaults());
  }

  public ServerConfig withLimits(Limits newLimits) {
    return with(f -> f.limits = newLimits);
  }

  public ServerConfig withKubernetes(Kubernetes k) {
    return with(f -> f.kubernetes = k);
  }

  public ServerConfig withAgentTokenFile(Path tokens) {
    return withSecurity(security.withAgentAuth(new AgentAuth(tokens, null, null)));
  }

  /** The CONNECT listener on the Unix socket {@code path} as well (null for none). */
  public ServerConfig withUds(Path path) {
    return with(f -> f.udsPath = path);
  }

  /** The admin listener (health, status) on {@code address}. */
  public ServerConfig withAdminListen(InetSocketAddress address) {
    return with(f -> f.adminListen = address);
  }

  /** TLS on the CONNECT listener and on the agent listener (either may be null). */
  public ServerConfig withTls(TlsFiles connect, TlsFiles agents) {
    return with(
        f -> {
          f.tls = connect;
          f.agentTls = agents;
        });
  }

  public ServerConfig withSecurity(Security newSecurity) {
    return with(f -> f.security = newSecurity);
  }

  /** A copy of this config with {@code change} applied to its components. */
  private ServerConfig with(java.util.function.Consumer<Components> change) {
    Components f = new Components(this);
    change.accept(f);
    return f.build();
  }

  /** The components of a config being copied with some of them changed. */
  private static final class Components {
    private EgressMode mode;
    private InetSocketAddress connectListen;
    private Path udsPath;
    private InetSocketAddress agentListen;
    private InetSocketAddress adminListen;
    private TlsFiles tls;
    private TlsFiles agentTls;
    private String serverId;
    private int serverCount;
    private Limits limits;
    private Kubernetes kubernetes;
    private Security security;
    private Routing routing;
    private ApiserverProtocol apiserverProtocol;

    Components(ServerConfig c) {
      mode = c.mode;
      connectListen = c.connectListen;
      udsPath = c.udsPath;
      agentListen = c.agentListen;
      adminListen = c.adminListen;
      tls = c.tls;
      agentTls = c.agentTls;
      serverId = c.serverId;
      serverCount = c.serverCount;
      limits = c.limits;
      kubernetes = c.kubernetes;
      security = c.security;
      routing = c.routing;
      apiserverProtocol = c.apiserverProtocol;
    }

    ServerConfig build() {
      return new ServerConfig(
          mode,
          connectListen,
          udsPath,
          agentListen,
          adminListen,
          tls,
          agentTls,
          serverId,
          serverCount,
          limits,
          kubernetes,
          security,
          routing,
          apiserverProtocol);
    }
  }
}

package io.egresstunnel.agent;

import io.egresstunnel.agent.policy.AllowRule;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.proto.session.SessionPipeline;
import io.egresstunnel.routing.EgressMode;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;

/**
 * Everything tunnel-agent is configured with. Built by {@link TunnelAgentMain} from flags, or
 * directly by tests.
 *
 * @param servers websocket base URLs of the servers (ws:// or wss://)
 * @param nodeName the node this agent speaks for
 * @param nodeAddresses the node's addresses, IPv4 and IPv6
 * @param podCidrs the node's pod CIDRs
 * @param kubeletPort the node's kubelet port
 * @param caCert CA bundle that signs the servers' certificates (wss), or null for the JDK's
 * @param allow extra destinations this agent may dial
 * @param mode the egress selector mode (decides whether pod CIDRs may be dialled)
 * @param masking whether websocket frames to the server are masked
 * @param limits every limit the agent enforces
 * @param kubernetes keep the allow-list current from the Kubernetes API, or null: flags only
 * @param credentials how the agent proves its node to the servers
 * @param adminListen address of /healthz, /readyz and /metrics, or null for none
 * @param egress what the agent carries besides its node: a default route, served networks
 */
public record AgentConfig(
    List<URI> servers,
    String nodeName,
    List<InetAddress> nodeAddresses,
    List<Cidr> podCidrs,
    int kubeletPort,
    Path caCert,
    List<AllowRule> allow,
    EgressMode mode,
    Masking masking,
    Limits limits,
    Kubernetes kubernetes,
    Credentials credentials,
    InetSocketAddress adminListen,
    Egress egress) {

  /** A config that carries nothing but its node ({@link Egress#NONE}). */
  public AgentConfig(
      List<URI> servers,
      String nodeName,
      List<InetAddress> nodeAddresses,
      List<Cidr> podCidrs,
      int kubeletPort,
      Path caCert,
      List<AllowRule> allow,
      EgressMode mode,
      Masking masking,
      Limits limits,
      Kubernetes kubernetes,
      Credentials credentials,
      InetSocketAddress adminListen) {
    this(
        servers,
        nodeName,
        nodeAddresses,
        podCidrs,
        kubeletPort,
        caCert,
        allow,
        mode,
        masking,
        limits,
        kubernetes,
        credentials,
        adminListen,
        Egress.NONE);
  }

  /**
   * What the agent carries besides its own node.
   *
   * @param defaultRoute offer to carry targets that no node owns ({@code --default-route})
   * @param serveCidrs networks this agent serves, on any port ({@code --serve-cidr})
   * @param serveHosts host names this agent serves, on any port ({@code --serve-host})
   */
  public record Egress(boolean defaultRoute, List<Cidr> serveCidrs, List<String> serveHosts) {
    public static final Egress NONE = new Egress(false, List.of(), List.of());

    public Egress {
      serveCidrs = List.copyOf(serveCidrs);
      serveHosts = List.copyOf(serveHosts);
      io.egresstunnel.proto.Limits.check(
          "--serve-cidr count",
          serveCidrs.size(),
          0,
          io.egresstunnel.proto.Limits.MAX_HELLO_ENTRIES);
      io.egresstunnel.proto.Limits.check(
          "--serve-host count",
          serveHosts.size(),
          0,
          io.egresstunnel.proto.Limits.MAX_HELLO_ENTRIES);
      serveHosts.forEach(h -> io.egresstunnel.proto.Limits.checkName("--serve-host", h));
    }
  }

  public AgentConfig withEgress(Egress e) {
    return with(f -> f.egress = e);
  }

  /**
   * What the agent presents to the servers at the websocket upgrade.
   *
   * @param tokenFile a file holding a bearer token (re-read at every connection, so a rotated
   *     ServiceAccount token is picked up), or null
   * @param cert a client certificate ({@code CN=system:node:NAME}) for wss, or null
   * @param key the certificate's private key (PKCS#8 PEM), or null
   */
  public record Credentials(Path tokenFile, Path cert, Path key) {
    public static final Credentials NONE = new Credentials(null, null, null);

    public Credentials {
      if ((cert == null) != (key == null)) {
        throw new IllegalArgumentException("--cert and --key go together");
      }
    }
  }

  /**
   * The agent's view of the Kubernetes API: its own Node and the pods scheduled on it.
   *
   * @param kubeconfig the kubeconfig file, or null for in-cluster configuration
   * @param clusterCidrs in cluster mode, destinations the agent may dial on any port
   */
  public record Kubernetes(Path kubeconfig, List<Cidr> clusterCidrs) {
    public Kubernetes {
      clusterCidrs = List.copyOf(clusterCidrs);
    }
  }

  /** Websocket masking of agent → server frames. RFC 6455 requires it; it costs CPU. */
  public enum Masking {
    /**
     * Not on wss:// (TLS already hides the bytes from intermediaries); on ws:// only the upgrade
     * and the hello, then no more once the server's hello accepts unmasked frames.
     */
    AUTO,
    /** Every frame, as RFC 6455 has clients do. */
    ALWAYS,
    NEVER
  }

  public AgentConfig {
    servers = List.copyOf(servers);
    nodeAddresses = List.copyOf(nodeAddresses);
    podCidrs = List.copyOf(podCidrs);
    allow = List.copyOf(allow);
    if (servers.isEmpty()) {
      throw new IllegalArgumentException("at least one --server is needed");
    }
    for (URI u : servers) {
      checkServer(u);
    }
  }

  /**
   * A {@code --server} value as the URL the agent connects to, with the port made explicit: {@link
   * SessionPipeline#DEFAULT_AGENT_PORT} (the server's default agent port) when it names none.
   *
   * @throws IllegalArgumentException saying in plain words what is wrong with it
   */
  public static URI parseServer(String text) {
    String value = text.strip();
    URI uri;
    try {
      uri = new URI(value);
    } catch (URISyntaxException e) {
      throw serverProblem(
          text, "not a URL: " + e.getReason() + " at character " + (e.getIndex() + 1));
    }
    String scheme = uri.getScheme();
    if (scheme == null || uri.isOpaque()) {
      throw serverProblem(text, "give a URL such as ws://HOST:PORT or wss://HOST:PORT");
    }
    scheme = scheme.toLowerCase(Locale.ROOT);
    if (!scheme.equals("ws") && !scheme.equals("wss")) {
      throw serverProblem(text, "the scheme must be ws:// or wss://, not " + uri.getScheme());
    }
    if (uri.getHost() == null) {
      // java.net.URI keeps an authority it cannot read as HOST:PORT unparsed: say which part is bad
      String authority = uri.getRawAuthority();
      if (authority == null || authority.isEmpty() || authority.startsWith(":")) {
        throw serverProblem(text, "no host in it");
      }
      int colon = authority.lastIndexOf(':');
      if (colon > 0 && !authority.endsWith("]") && !authority.substring(colon + 1).isEmpty()) {
        String port = authority.substring(colon + 1);
        if (!port.chars().allMatch(Character::isDigit)) {
          throw serverProblem(text, "the port '" + port + "' is not a number");
        }
        authority = authority.substring(0, colon);
      }
      throw serverProblem(text, "'" + authority + "' is not a valid host name or address");
    }
    if (uri.getRawUserInfo() != null) {
      throw serverProblem(text, "user information is not supported in it (use --token-file)");
    }
    int port = uri.getPort() == -1 ? SessionPipeline.DEFAULT_AGENT_PORT : uri.getPort();
    try {
      uri =
          new URI(
              scheme, null, uri.getHost(), port, uri.getPath(), uri.getQuery(), uri.getFragment());
    } catch (URISyntaxException e) {
      throw serverProblem(text, "not a URL: " + e.getReason());
    }
    checkServer(uri);
    return uri;
  }

  private static void checkServer(URI u) {
    if (!"ws".equals(u.getScheme()) && !"wss".equals(u.getScheme())) {
      throw serverProblem(u.toString(), "the scheme must be ws:// or wss://");
    }
    if (u.getHost() == null) {
      throw serverProblem(u.toString(), "no host in it");
    }
    if (u.getPort() != -1 && (u.getPort() < 1 || u.getPort() > 65535)) {
      throw serverProblem(u.toString(), "port " + u.getPort() + " is out of range (1-65535)");
    }
  }

  private static IllegalArgumentException serverProblem(String value, String why) {
    return new IllegalArgumentException("--server " + value + ": " + why);
  }

  /**
   * The agent's limits.
   *
   * @param initialWindow per-stream credit granted to the server
   * @param maxFramePayload largest frame body accepted from the server
   * @param maxStreams most concurrent streams accepted per server
   * @param maxPendingDials most dials in progress per server
   * @param dialTimeout default and maximum time to connect a target
   * @param handshakeTimeout time allowed for connect, websocket upgrade and hello
   * @param pingInterval how often a quiet session is pinged
   * @param pingTimeout how long a session may stay silent before it is closed
   * @param reconnectMin first reconnect delay
   * @param reconnectMax largest reconnect delay
   * @param threads event loop threads (0: one per core)
   * @param syncInterval after reaching a server it already holds, how long the agent waits before
   *     it connects again through that URL (doubling up to {@code reconnectMax})
   * @param gracePeriod on shutdown, how long open streams may go on after the go-away
   */
  public record Limits(
      int initialWindow,
      int maxFramePayload,
      int maxStreams,
      int maxPendingDials,
      Duration dialTimeout,
      Duration handshakeTimeout,
      Duration pingInterval,
      Duration pingTimeout,
      Duration reconnectMin,
      Duration reconnectMax,
      int threads,
      Duration syncInterval,
      Duration gracePeriod) {

    public Limits withSyncInterval(Duration interval) {
      return new Limits(
          initialWindow,
          maxFramePayload,
          maxStreams,
          maxPendingDials,
          dialTimeout,
          handshakeTimeout,
          pingInterval,
          pingTimeout,
          reconnectMin,
          reconnectMax,
          threads,
          interval,
          gracePeriod);
    }

    public Limits withMaxStreams(int max) {
      return new Limits(
          initialWindow,
          maxFramePayload,
          max,
          maxPendingDials,
          dialTimeout,
          handshakeTimeout,
          pingInterval,
          pingTimeout,
          reconnectMin,
          reconnectMax,
          threads,
          syncInterval,
          gracePeriod);
    }

    public Limits withGracePeriod(Duration grace) {
      return new Limits(
          initialWindow,
          maxFramePayload,
          maxStreams,
          maxPendingDials,
          dialTimeout,
          handshakeTimeout,
          pingInterval,
          pingTimeout,
          reconnectMin,
          reconnectMax,
          threads,
          syncInterval,
          grace);
    }

    public Limits withPing(Duration interval, Duration timeout) {
      return new Limits(
          initialWindow,
          maxFramePayload,
          maxStreams,
          maxPendingDials,
          dialTimeout,
          handshakeTimeout,
          interval,
          timeout,
          reconnectMin,
          reconnectMax,
          threads,
          syncInterval,
          gracePeriod);
    }

    public static Limits defaults() {
      return new Limits(
          io.egresstunnel.proto.Limits.DEFAULT_INITIAL_WINDOW,
          io.egresstunnel.proto.Limits.DEFAULT_MAX_FRAME_PAYLOAD,
          10_000,
          10_000,
          Duration.ofSeconds(10),
          Duration.ofSeconds(10),
          Duration.ofSeconds(15),
          Duration.ofSeconds(45),
          Duration.ofMillis(100),
          Duration.ofSeconds(5),
          0,
          Duration.ofSeconds(5),
          Duration.ofSeconds(20));
    }
  }

  /** A plain config for one node with default limits (tests, local use). */
  public static AgentConfig simple(
      URI server, String nodeName, List<InetAddress> addresses, EgressMode mode) {
    return new AgentConfig(
        List.of(server),
        nodeName,
        addresses,
        List.of(),
        10250,
        null,
        List.of(),
        mode,
        Masking.AUTO,
        Limits.defaults(),
        null,
        Credentials.NONE,
        null);
  }

  public AgentConfig withServers(List<URI> urls) {
    return with(f -> f.servers = urls);
  }

  public AgentConfig withMasking(Masking m) {
    return with(f -> f.masking = m);
  }

  public AgentConfig withKubeletPort(int port) {
    return with(f -> f.kubeletPort = port);
  }

  public AgentConfig withPodCidrs(List<Cidr> cidrs) {
    return with(f -> f.podCidrs = cidrs);
  }

  public AgentConfig withAllow(List<AllowRule> rules) {
    return with(f -> f.allow = rules);
  }

  public AgentConfig withKubernetes(Kubernetes k) {
    return with(f -> f.kubernetes = k);
  }

  public AgentConfig withCredentials(Path caBundle, Credentials newCredentials) {
    return with(
        f -> {
          f.caCert = caBundle;
          f.credentials = newCredentials;
        });
  }

  public AgentConfig withLimits(Limits newLimits) {
    return with(f -> f.limits = newLimits);
  }

  public AgentConfig withAdminListen(InetSocketAddress address) {
    return with(f -> f.adminListen = address);
  }

  /** A copy of this config with {@code change} applied to its components. */
  private AgentConfig with(java.util.function.Consumer<Components> change) {
    Components f = new Components(this);
    change.accept(f);
    return f.build();
  }

  /** The components of a config being copied with some of them changed. */
  private static final class Components {
    private List<URI> servers;
    private String nodeName;
    private List<InetAddress> nodeAddresses;
    private List<Cidr> podCidrs;
    private int kubeletPort;
    private Path caCert;
    private List<AllowRule> allow;
    private EgressMode mode;
    private Masking masking;
    private Limits limits;
    private Kubernetes kubernetes;
    private Credentials credentials;
    private InetSocketAddress adminListen;
    private Egress egress;

    Components(AgentConfig c) {
      servers = c.servers;
      nodeName = c.nodeName;
      nodeAddresses = c.nodeAddresses;
      podCidrs = c.podCidrs;
      kubeletPort = c.kubeletPort;
      caCert = c.caCert;
      allow = c.allow;
      mode = c.mode;
      masking = c.masking;
      limits = c.limits;
      kubernetes = c.kubernetes;
      credentials = c.credentials;
      adminListen = c.adminListen;
      egress = c.egress;
    }

    AgentConfig build() {
      return new AgentConfig(
          servers,
          nodeName,
          nodeAddresses,
          podCidrs,
          kubeletPort,
          caCert,
          allow,
          mode,
          masking,
          limits,
          kubernetes,
          credentials,
          adminListen,
          egress);
    }
  }
}

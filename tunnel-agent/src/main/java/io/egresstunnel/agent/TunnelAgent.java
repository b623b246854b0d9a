package io.egresstunnel.agent;

import io.egresstunnel.agent.policy.DialPolicy;
import io.egresstunnel.proto.AgentHello;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.config.CommandErrors;
import io.egresstunnel.proto.net.Addresses;
import io.egresstunnel.proto.net.AdminHttp;
import io.egresstunnel.proto.net.ReloadingSslContext;
import io.egresstunnel.proto.net.TargetDialer;
import io.egresstunnel.proto.net.TlsOptions;
import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.routing.KubernetesClients;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.EventLoopGroup;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;
import javax.net.ssl.SSLException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * tunnel-agent: one {@link ServerConnection} per server URL, all sharing one event-loop group, one
 * dial policy for this node, one dialer, and the {@link ServerSet}: one session per server id,
 * until the agent holds as many servers as the servers' hellos announce.
 */
public final class TunnelAgent implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(TunnelAgent.class);

  private final java.util.concurrent.atomic.AtomicBoolean closed =
      new java.util.concurrent.atomic.AtomicBoolean();
  private final AgentConfig config;
  private final EventLoopGroup group;
  private final TargetDialer dialer = new TargetDialer(2);
  private final AtomicReference<DialPolicy> policy;
  private final KubernetesClient kubernetesClient;
  private final NodePolicySource policySource;
  private final List<ServerConnection> connections = new ArrayList<>();
  private final ServerSet servers;
  private final AgentMetrics metrics;
  private volatile Channel adminChannel;
  private ScheduledExecutorService tlsReloader;
  private ReloadingSslContext reloadingTls;

  public TunnelAgent(AgentConfig config) throws SSLException {
    this(config, new PrometheusRegistry());
  }

  /**
   * An agent whose metrics go to {@code metricsRegistry}, served at {@code /metrics} on the admin
   * listener; the process adds its JVM metrics there. Each agent needs a registry of its own.
   */
  public TunnelAgent(AgentConfig config, PrometheusRegistry metricsRegistry) throws SSLException {
    this.config = config;
    this.metrics =
        new AgentMetrics(
            metricsRegistry,
            () -> sessions().size(),
            () -> serverCount(),
            config.mode().flagValue());
    this.policy =
        new AtomicReference<>(
            new DialPolicy(
                config.mode(),
                config.nodeName(),
                config.nodeAddresses(),
                config.podCidrs(),
                config.kubeletPort(),
                config.allow(),
                config.egress().defaultRoute(),
                config.egress().serveCidrs(),
                config.egress().serveHosts()));
    if (config.kubernetes() != null) {
      this.kubernetesClient = KubernetesClients.create(config.kubernetes().kubeconfig());
      this.policySource = new NodePolicySource(config, policy);
    } else {
      this.kubernetesClient = null;
      this.policySource = null;
    }
    this.group =
        Transport.newGroup(config.limits().threads(), new DefaultThreadFactory("agent-io", true));
    AgentHello hello =
        new AgentHello(
            Limits.MIN_VERSION,
            Limits.MAX_VERSION,
            (config.egress().defaultRoute() ? AgentHello.CAP_DEFAULT_ROUTE : 0)
                | (config.masking() == AgentConfig.Masking.AUTO
                    ? AgentHello.CAP_UNMASKED_FRAMES
                    : 0),
            config.limits().initialWindow(),
            config.limits().maxFramePayload(),
            config.kubeletPort(),
            config.nodeName(),
            config.nodeAddresses(),
            config.podCidrs(),
            config.egress().serveCidrs(),
            config.egress().serveHosts());
    DialHandler dialHandler = new DialHandler(policy::get, dialer, config.limits().dialTimeout());
    Supplier<SslContext> tls = null;
    this.servers = new ServerSet(config.servers().size());
    for (URI server : config.servers()) {
      if ("wss".equals(server.getScheme()) && tls == null) {
        tls = clientTls(config);
      }
      connections.add(
          new ServerConnection(
              server,
              config,
              group,
              "wss".equals(server.getScheme()) ? tls : null,
              hello,
              dialHandler,
              servers,
              this::serversChanged,
              metrics));
    }
  }

  /**
   * The wss context. With a CA bundle or a client certificate from files, it follows the files:
   * each new connection uses what they hold now.
   */
  private Supplier<SslContext> clientTls(AgentConfig config) throws SSLException {
    List<Path> files = new ArrayList<>();
    if (config.caCert() != null) {
      files.add(config.caCert());
    }
    if (config.credentials().cert() != null) {
      files.add(config.credentials().cert());
      files.add(config.credentials().key());
    }
    if (files.isEmpty()) {
      SslContext fixed = buildClientTls(config);
      return () -> fixed;
    }
    tlsReloader =
        Executors.newSingleThreadScheduledExecutor(new DefaultThreadFactory("tls-reload", true));
    reloadingTls =
        ReloadingSslContext.load(
                "agent TLS",
                files,
                () -> buildClientTls(config),
                TlsOptions.defaults().reloadInterval())
            .start(tlsReloader);
    return reloadingTls::current;
  }

  private static SslContext buildClientTls(AgentConfig config) throws SSLException {
    SslContextBuilder b =
        TlsOptions.defaults().apply(SslContextBuilder.forClient(), TlsOptions.Carries.TUNNEL);
    if (config.caCert() != null) {
      b.trustManager(config.caCert().toFile());
    }
    AgentConfig.Credentials credentials = config.credentials();
    if (credentials.cert() != null) {
      b.keyManager(credentials.cert().toFile(), credentials.key().toFile());
    }
    return b.build();
  }

  public TunnelAgent start() {
    if (policySource != null) {
      policySource.start(kubernetesClient);
    }
    log.info(
        "tunnel-agent for node {}: {}; {}",
        config.nodeName(),
        policy.get().describe(),
        Transport.describe());
    if (config.adminListen() != null) {
      startAdmin(config.adminListen());
    }
    connections.forEach(ServerConnection::start);
    return this;
  }

  /**
   * {@code /healthz}, {@code /readyz} (a session is established; the body says how many of the
   * announced servers are held, {@code ok: 2/3 servers}, and the last refusal, if a server refused
   * the agent), {@code /status} (connections and streams as JSON, {@link AgentStatus}) and {@code
   * /metrics}.
   */
  private void startAdmin(InetSocketAddress address) {
    Map<String, AdminHttp.Endpoint> endpoints =
        Map.of(
            "/healthz",
            AdminHttp.Endpoint.of(
                q -> {
                  String failure = failure();
                  return failure == null
                      ? AdminHttp.Response.text(HttpResponseStatus.OK, "ok")
                      : AdminHttp.Response.text(
                          HttpResponseStatus.SERVICE_UNAVAILABLE, "unhealthy: " + failure);
                }),
            "/readyz",
            AdminHttp.Endpoint.of(
                q -> {
                  int held = sessions().size();
                  String servers = held + "/" + serverCount() + " servers";
                  ServerRefusal refused = lastRefusal();
                  if (refused != null) {
                    servers += "; " + refused.server() + " refused the tunnel: " + refused;
                  }
                  return held > 0
                      ? AdminHttp.Response.text(HttpResponseStatus.OK, "ok: " + servers)
                      : AdminHttp.Response.text(
                          HttpResponseStatus.SERVICE_UNAVAILABLE, "not ready: " + servers);
                }),
            "/status",
            q ->
                AgentStatus.collect(this)
                    .thenApply(
                        report ->
                            new AdminHttp.Response(
                                HttpResponseStatus.OK,
                                "application/json",
                                AgentStatus.toJson(report)
                                    .getBytes(java.nio.charset.StandardCharsets.UTF_8))));
    ChannelFuture bound =
        AdminHttp.bootstrap(group, endpoints, metrics.registry())
            .bind(address)
            .awaitUninterruptibly();
    if (!bound.isSuccess()) {
      close();
      throw new UncheckedIOException(
          CommandErrors.bindFailure("--admin-listen", address, bound.cause()));
    }
    adminChannel = bound.channel();
    log.info("listening for admin on {}", Addresses.text(adminChannel.localAddress()));
  }

  /**
   * Why the agent cannot go on (a tunnel that can no longer reconnect), or null while it works or
   * keeps retrying. /healthz is 503 with it, so that a liveness probe restarts the agent.
   */
  public String failure() {
    for (ServerConnection c : connections) {
      String failure = c.failure();
      if (failure != null) {
        return failure;
      }
    }
    return null;
  }

  /** The bound admin address (useful with port 0). */
  public InetSocketAddress adminAddress() {
    return (InetSocketAddress) adminChannel.localAddress();
  }

  /** The agent's metrics (docs/metrics.md). */
  public AgentMetrics metrics() {
    return metrics;
  }

  /**
   * The sessions this agent holds, one per server: each from its hello until it closes or its
   * server announces a go-away.
   */
  public List<TunnelSession> sessions() {
    return servers.sessions();
  }

  /** One per {@code --server} URL. */
  List<ServerConnection> connections() {
    return connections;
  }

  /** The ids of the servers this agent holds a session to, sorted. */
  public Set<String> serverIds() {
    return servers.ids();
  }

  /**
   * The latest refusal of a websocket upgrade among the server URLs that have not had a session
   * established since (a token or certificate the server does not accept, a node it may not speak
   * for), or null if none.
   */
  public ServerRefusal lastRefusal() {
    ServerRefusal latest = null;
    for (ServerConnection c : connections) {
      ServerRefusal r = c.lastRefusal();
      if (r != null && (latest == null || r.at().isAfter(latest.at()))) {
        latest = r;
      }
    }
    return latest;
  }

  /** How many servers serve the cluster, as the servers' hellos tell (1 before any hello). */
  public int serverCount() {
    return servers.serverCount();
  }

  private void serversChanged() {
    for (ServerConnection c : connections) {
      c.reconcile();
    }
  }

  /**
   * Graceful shutdown, first half: stops reconnecting and sends GO_AWAY(NO_ERROR) on every session,
   * so that servers route no new streams here (a dial that crosses it gets DRAINING). Returns true
   * once every session has closed after its last stream, or false when {@code grace} has passed
   * first. {@link #close()} then ends whatever is still open.
   */
  public boolean drain(Duration grace) throws InterruptedException {
    log.info(
        "draining: go-away to servers {}; open streams may finish within {}", servers.ids(), grace);
    for (ServerConnection c : connections) {
      c.drain("the agent for node " + config.nodeName() + " is shutting down");
    }
    long deadline = System.nanoTime() + grace.toNanos();
    while (true) {
      List<CompletableFuture<Void>> open = new ArrayList<>();
      for (ServerConnection c : connections) {
        open.addAll(c.unfinished());
      }
      if (open.isEmpty()) {
        log.info("drained: every session closed after its last stream");
        return true;
      }
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        log.warn("grace period of {} is over; closing {} open session(s)", grace, open.size());
        return false;
      }
      try {
        open.get(0).get(left, TimeUnit.NANOSECONDS);
      } catch (TimeoutException | ExecutionException e) {
        // the deadline is checked above
      }
    }
  }

  public AgentConfig config() {
    return config;
  }

  /** The dial policy in force now. */
  public DialPolicy policy() {
    return policy.get();
  }

  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return; // closing twice (after a drain, or from a test and a hook) is harmless
    }
    Channel admin = adminChannel;
    if (admin != null) {
      admin.close().syncUninterruptibly();
    }
    connections.forEach(ServerConnection::stop);
    Transport.settle(group);
    group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
    dialer.close();
    if (reloadingTls != null) {
      reloadingTls.close();
      tlsReloader.shutdownNow();
    }
    if (policySource != null) {
      policySource.close();
    }
    if (kubernetesClient != null) {
      kubernetesClient.close();
    }
  }
}

package io.egresstunnel.server;

import io.egresstunnel.proto.ErrorCode;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.config.CommandErrors;
import io.egresstunnel.proto.net.Addresses;
import io.egresstunnel.proto.net.AdminHttp;
import io.egresstunnel.proto.net.HalfClose;
import io.egresstunnel.proto.net.ReloadingSslContext;
import io.egresstunnel.proto.net.SlicingWebSocketFrameDecoder;
import io.egresstunnel.proto.net.TargetDialer;
import io.egresstunnel.proto.net.TlsOptions;
import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.proto.session.SessionPipeline;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.proto.session.TunnelStream;
import io.egresstunnel.routing.DeclaredRouter;
import io.egresstunnel.routing.KubernetesClients;
import io.egresstunnel.routing.KubernetesRouteSource;
import io.egresstunnel.routing.Router;
import io.egresstunnel.routing.ServedNetworks;
import io.egresstunnel.server.admin.AdminEndpoints;
import io.egresstunnel.server.admin.ServerMetrics;
import io.egresstunnel.server.agents.AgentAuthHandler;
import io.egresstunnel.server.agents.AgentAuthenticator;
import io.egresstunnel.server.agents.AgentRegistry;
import io.egresstunnel.server.frontend.ConnectHandler;
import io.egresstunnel.server.frontend.ProtocolDetector;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.websocketx.WebSocketDecoderConfig;
import io.netty.handler.codec.http.websocketx.WebSocketServerProtocolConfig;
import io.netty.handler.codec.http.websocketx.WebSocketServerProtocolHandler;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.GroupPrincipal;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipalNotFoundException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * tunnel-server: the CONNECT listeners (TCP, optionally TLS with client certificates, and a Unix
 * socket), the agent listener (ws or wss), and the admin listener. One event-loop group serves them
 * all; every limit comes from {@link ServerConfig.Limits}.
 */
public final class TunnelServer implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(TunnelServer.class);

  private final ServerConfig config;
  private final DeclaredRouter declaredRouter;
  private final KubernetesClient kubernetesClient;
  private final KubernetesRouteSource apiRoutes;
  private final Router router;
  private final ServedNetworks servedNetworks;
  private final TargetRoutes routes;
  private final AgentRegistry registry;
  private final ServerMetrics metrics;
  private final AgentAuthenticator authenticator;
  private final io.egresstunnel.proto.config.RateLimitedLog upgradeRefusals =
      AgentAuthHandler.newRefusalLog();
  private final TargetDialer dialer = new TargetDialer(2);
  private final EventLoopGroup bossGroup;
  private final EventLoopGroup workerGroup;
  private final List<Channel> listeners = new ArrayList<>();
  private final List<ReloadingSslContext> reloadingContexts = new ArrayList<>();
  private final ScheduledExecutorService tlsReloader =
      Executors.newSingleThreadScheduledExecutor(new DefaultThreadFactory("tls-reload", true));
  private volatile boolean started;
  private volatile boolean draining;
  private final Map<Channel, DirectStream> directStreams = new ConcurrentHashMap<>();
  private final java.util.concurrent.atomic.AtomicBoolean closed =
      new java.util.concurrent.atomic.AtomicBoolean();
  private Channel connectChannel;
  private Channel agentChannel;
  private Channel adminChannel;

  public TunnelServer(ServerConfig config) {
    this(config, new PrometheusRegistry());
  }

  /**
   * A server whose metrics go to {@code metricsRegistry}, served at {@code /metrics} on the admin
   * listener; the process adds its JVM metrics there. Each server needs a registry of its own.
   */
  public TunnelServer(ServerConfig config, PrometheusRegistry metricsRegistry) {
    this.config = config;
    this.declaredRouter = new DeclaredRouter(config.mode());
    if (config.kubernetes() != null) {
      this.kubernetesClient = KubernetesClients.create(config.kubernetes().kubeconfig());
      this.apiRoutes =
          new KubernetesRouteSource(
              kubernetesClient,
              config.mode(),
              config.kubernetes().ownNode(),
              Duration.ofMillis(50));
    } else {
      this.kubernetesClient = null;
      this.apiRoutes = null;
    }
    this.servedNetworks = new ServedNetworks(config.mode());
    this.router = (apiRoutes != null ? (Router) apiRoutes : declaredRouter).orElse(servedNetworks);
    this.registry =
        new AgentRegistry(
            declaredRouter,
            apiRoutes,
            servedNetworks,
            config.limits().maxAgents(),
            config.routing().departedNodeTtl(),
            config.routing().maxDepartedNodes());
    this.routes = new TargetRoutes(router, registry, config);
    this.metrics =
        new ServerMetrics(metricsRegistry, registry::agentCount, config.mode().flagValue());
    ServerConfig.AgentAuth auth = config.security().agentAuth();
    if (auth.clientCa() != null && config.agentTls() == null) {
      throw new IllegalArgumentException(
          "--agent-client-ca needs wss: give --agent-tls-cert and --agent-tls-key");
    }
    this.authenticator = AgentAuthenticator.create(auth, kubernetesClient);
    this.bossGroup = Transport.newGroup(1, new DefaultThreadFactory("tunnel-accept", true));
    this.workerGroup =
        Transport.newGroup(config.limits().threads(), new DefaultThreadFactory("tunnel-io", true));
  }

  /** Binds every configured listener; throws if one cannot be bound. */
  public TunnelServer start() throws IOException, InterruptedException {
    try {
      TlsOptions tlsOptions = config.security().tls();
      ReloadingSslContext connectTls =
          reloading("CONNECT listener TLS", config.tls(), ClientAuth.REQUIRE, tlsOptions, true);
      ServerConfig.TlsFiles agentFiles = config.agentTls();
      if (agentFiles != null && config.security().agentAuth().clientCa() != null) {
        agentFiles =
            new ServerConfig.TlsFiles(
                agentFiles.cert(), agentFiles.key(), config.security().agentAuth().clientCa());
      }
      // Certificates are one way among several for agents: ask for one, require it only if it is
      // the only way.
      ClientAuth agentClientAuth =
          config.security().agentAuth().tokenFile() == null
                  && config.security().agentAuth().tokenReview() == null
              ? ClientAuth.REQUIRE
              : ClientAuth.OPTIONAL;
      ReloadingSslContext agentTls =
          reloading("agent listener TLS", agentFiles, agentClientAuth, tlsOptions, false);
      if (!authenticator.required()) {
        log.warn(
            "agents are not authenticated: any agent may speak for any node (give"
                + " --agent-token-file, --agent-client-ca or --authentication-audience)");
      }
      if (config.connectListen() != null) {
        connectChannel =
            bind(
                connectBootstrap(Transport.serverChannel(), connectTls),
                config.connectListen(),
                "CONNECT",
                "--connect-listen");
      }
      if (config.udsPath() != null) {
        if (!Transport.supportsDomainHalfClosure()) {
          throw new CommandErrors.Failure(
              "--uds needs the epoll transport (Linux): with "
                  + Transport.name()
                  + ", Netty's Unix-socket channel cannot half-close and would lose the answer to a"
                  + " client that shuts down its sending side");
        }
        Files.deleteIfExists(config.udsPath());
        ServerBootstrap uds = connectBootstrap(Transport.domainServerChannel(), null);
        bind(
            uds, Transport.domainSocketAddress(config.udsPath()), "CONNECT (Unix socket)", "--uds");
        restrictSocket(config.udsPath(), config.security().udsGroup());
      }
      agentChannel =
          bind(agentBootstrap(agentTls), config.agentListen(), "agent", "--agent-listen");
      if (apiRoutes != null) {
        apiRoutes.start(); // handlers first, then informers; /readyz waits for the sync
      }
      if (config.adminListen() != null) {
        adminChannel = bind(adminBootstrap(), config.adminListen(), "admin", "--admin-listen");
      }
      started = true;
      log.info(
          "tunnel-server {} up: mode {}, apiserver protocol {}, {}, TLS engines {}"
              + " (CONNECT) and {} (agents), limits {}",
          config.serverId(),
          config.mode().flagValue(),
          config.apiserverProtocol().flagValue(),
          Transport.describe(),
          TlsOptions.engine(TlsOptions.Carries.CLIENT_STREAM),
          TlsOptions.engine(TlsOptions.Carries.TUNNEL),
          config.limits());
      return this;
    } catch (IOException | InterruptedException | RuntimeException e) {
      close();
      throw e;
    }
  }

  /**
   * Binds a listener; a failure is an IOException naming the flag that set the address ({@code
   * --agent-listen 0.0.0.0:8091: address already in use}).
   */
  private Channel bind(ServerBootstrap b, SocketAddress address, String what, String flag)
      throws InterruptedException, IOException {
    var f = b.bind(address).await();
    if (!f.isSuccess()) {
      throw CommandErrors.bindFailure(flag, address, f.cause());
    }
    listeners.add(f.channel());
    log.info("listening for {} on {}", what, Addresses.text(f.channel().localAddress()));
    return f.channel();
  }

  private ServerBootstrap connectBootstrap(
      Class<? extends io.netty.channel.ServerChannel> channelClass, ReloadingSslContext tls) {
    ServerConfig.Limits limits = config.limits();
    HttpDecoderConfig httpConfig =
        new HttpDecoderConfig()
            .setMaxInitialLineLength(limits.maxRequestLine())
            .setMaxHeaderSize(limits.maxHeaderBytes())
            .setMaxChunkSize(8192);
    ServerBootstrap b =
        new ServerBootstrap()
            .group(bossGroup, workerGroup)
            .channel(channelClass)
            .option(ChannelOption.SO_BACKLOG, limits.listenBacklog())
            .childOption(ChannelOption.AUTO_READ, false)
            .childOption(ChannelOption.ALLOW_HALF_CLOSURE, true);
    if (channelClass == Transport.serverChannel()) {
      b.childOption(ChannelOption.TCP_NODELAY, true); // TCP only; a Unix socket has no Nagle
    }
    return b.childHandler(
        new ChannelInitializer<Channel>() {
          @Override
          protected void initChannel(Channel ch) {
            Transport.tuneStreamSocket(ch);
            ChannelPipeline p = ch.pipeline();
            if (tls != null) {
              p.addLast("tls", tls.newHandler(ch.alloc()));
            }
            p.addLast("detect", new ProtocolDetector(TunnelServer.this));
            ConnectHandler.addHttpCodec(p, httpConfig);
            p.addLast("connect", new ConnectHandler(TunnelServer.this));
          }
        });
  }

  private ServerBootstrap agentBootstrap(ReloadingSslContext tls) {
    ServerConfig.Limits limits = config.limits();
    TunnelSession.Config sessionConfig =
        new TunnelSession.Config(
            limits.initialWindow(),
            limits.maxFramePayload(),
            limits.maxStreamsPerAgent(),
            limits.maxPendingDialsPerAgent(),
            limits.handshakeTimeout().toMillis());
    WebSocketServerProtocolConfig wsConfig =
        WebSocketServerProtocolConfig.newBuilder()
            .websocketPath(SessionPipeline.TUNNEL_PATH)
            .checkStartsWith(false)
            .handshakeTimeoutMillis(limits.handshakeTimeout().toMillis())
            .decoderConfig(
                WebSocketDecoderConfig.newBuilder()
                    .maxFramePayloadLength(Limits.HEADER_SIZE + limits.maxFramePayload())
                    .allowMaskMismatch(true)
                    .build())
            .build();
    return new ServerBootstrap()
        .group(bossGroup, workerGroup)
        .channel(Transport.serverChannel())
        .option(ChannelOption.SO_BACKLOG, limits.listenBacklog())
        .childOption(ChannelOption.TCP_NODELAY, true)
        .childOption(
            ChannelOption.WRITE_BUFFER_WATER_MARK,
            new WriteBufferWaterMark(512 * 1024, 2 * 1024 * 1024))
        .childHandler(
            new ChannelInitializer<Channel>() {
              @Override
              protected void initChannel(Channel ch) {
                ChannelPipeline p = ch.pipeline();
                ch.config().setRecvByteBufAllocator(new Transport.LimitedReadAllocator());
                if (tls != null) {
                  p.addLast(SessionPipeline.TLS_HANDLER, tls.newHandler(ch.alloc()));
                }
                p.addLast("http", new HttpServerCodec());
                p.addLast("http-aggregator", new HttpObjectAggregator(8192));
                p.addLast(
                    "agent-auth",
                    new AgentAuthHandler(
                        authenticator,
                        registry,
                        limits.maxAgents(),
                        limits.handshakeTimeout().toMillis(),
                        TunnelServer.this::isDraining,
                        metrics::agentUpgradeRefused,
                        upgradeRefusals));
                if (SlicingWebSocketFrameDecoder.enabled()) {
                  p.addLast(
                      "ws-decoder-installer",
                      SlicingWebSocketFrameDecoder.serverInstaller(wsConfig.decoderConfig()));
                }
                p.addLast("websocket", new WebSocketServerProtocolHandler(wsConfig));
                SessionPipeline.install(
                    p,
                    limits.pingInterval(),
                    limits.pingTimeout(),
                    TunnelSession.server(
                            sessionConfig, config.serverId(), config.serverCount(), registry)
                        .withMetrics(metrics.tunnel()));
              }
            });
  }

  private ServerBootstrap adminBootstrap() {
    return AdminHttp.bootstrap(workerGroup, AdminEndpoints.of(this), metrics.registry());
  }

  /**
   * A TLS context for a listener that follows its files: changed certificates, keys and CAs are
   * used for new connections; open ones keep theirs.
   */
  private ReloadingSslContext reloading(
      String what,
      ServerConfig.TlsFiles files,
      ClientAuth clientAuth,
      TlsOptions options,
      boolean connectListener) {
    if (files == null) {
      return null;
    }
    List<Path> paths = new ArrayList<>(List.of(files.cert(), files.key()));
    if (files.clientCa() != null) {
      paths.add(files.clientCa());
    }
    ReloadingSslContext tls =
        ReloadingSslContext.load(
                what,
                paths,
                () -> serverTls(files, clientAuth, options, connectListener),
                options.reloadInterval())
            .start(tlsReloader);
    reloadingContexts.add(tls);
    return tls;
  }

  /**
   * A server context for {@code files}. The CONNECT listener ({@code connectListener}) offers ALPN
   * {@code h2} to clients that ask for it, as gRPC clients do, and {@code http/1.1}; a client that
   * asks for neither (the apiserver's HTTP CONNECT) negotiates nothing.
   */
  private static SslContext serverTls(
      ServerConfig.TlsFiles files,
      ClientAuth clientAuth,
      TlsOptions options,
      boolean connectListener)
      throws SSLException {
    SslContextBuilder b =
        options.apply(
            SslContextBuilder.forServer(files.cert().toFile(), files.key().toFile()),
            connectListener ? TlsOptions.Carries.CLIENT_STREAM : TlsOptions.Carries.TUNNEL);
    if (connectListener) {
      b.applicationProtocolConfig(
          new io.netty.handler.ssl.ApplicationProtocolConfig(
              io.netty.handler.ssl.ApplicationProtocolConfig.Protocol.ALPN,
              io.netty.handler.ssl.ApplicationProtocolConfig.SelectorFailureBehavior.NO_ADVERTISE,
              io.netty.handler.ssl.ApplicationProtocolConfig.SelectedListenerFailureBehavior.ACCEPT,
              io.netty.handler.ssl.ApplicationProtocolNames.HTTP_2,
              io.netty.handler.ssl.ApplicationProtocolNames.HTTP_1_1));
    }
    if (files.clientCa() != null) {
      b.trustManager(files.clientCa().toFile()).clientAuth(clientAuth);
    }
    return b.build();
  }

  /** Owner only (0600), or owner and {@code group} (0660). */
  private static void restrictSocket(Path socket, String group) throws IOException {
    if (group == null) {
      Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-------"));
      return;
    }
    GroupPrincipal principal;
    try {
      principal =
          socket.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByGroupName(group);
    } catch (UserPrincipalNotFoundException e) {
      throw new IOException("--uds-group " + group + ": no such group", e);
    }
    Files.getFileAttributeView(socket, PosixFileAttributeView.class).setGroup(principal);
    Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-rw----"));
  }

  public ServerConfig config() {
    return config;
  }

  /** Where dials go: the mode's routes, served networks and the default route. */
  public TargetRoutes routes() {
    return routes;
  }

  /** The networks that agents serve ({@code --serve-cidr}, {@code --serve-host}). */
  public ServedNetworks servedNetworks() {
    return servedNetworks;
  }

  /** The Kubernetes route source, if the server has one. */
  public KubernetesRouteSource apiRoutes() {
    return apiRoutes;
  }

  public AgentRegistry registry() {
    return registry;
  }

  /** The server's metrics (docs/metrics.md). */
  public ServerMetrics metrics() {
    return metrics;
  }

  public TargetDialer dialer() {
    return dialer;
  }

  /** A CONNECT dialled directly (no agent): what status pages show of it. */
  public record DirectStream(String target, long startNanos, String protocol) {}

  /** Records a direct stream for status and drain; it is forgotten when the client closes. */
  public void directStreamStarted(Channel client, String target) {
    directStreams.put(
        client,
        new DirectStream(target, System.nanoTime(), client.attr(TunnelStream.PROTOCOL).get()));
    client.closeFuture().addListener(f -> directStreams.remove(client));
  }

  public Map<Channel, DirectStream> directStreams() {
    return directStreams;
  }

  /** One readiness check: its name, whether it passes, and why. */
  public record Check(String name, boolean ok, String detail) {}

  /** The checks behind /readyz, in order. */
  public List<Check> readiness() {
    List<Check> checks = new ArrayList<>();
    boolean listening = started && listeners.stream().allMatch(Channel::isActive);
    checks.add(
        new Check(
            "listeners",
            listening,
            listening ? listeners.size() + " listening" : "not every listener is up"));
    if (apiRoutes != null) {
      checks.add(new Check("route-source", apiRoutes.isSynced(), apiRoutes.describe()));
    }
    int agents = registry.agentCount();
    int needed = config.limits().readyMinAgents();
    checks.add(
        new Check(
            "agents",
            agents >= needed,
            agents + " connected" + (needed > 0 ? ", " + needed + " needed" : "")));
    checks.add(new Check("not-draining", !draining, draining ? "shutting down" : "serving"));
    return checks;
  }

  /** Every readiness check passes. */
  public boolean isReady() {
    return readiness().stream().allMatch(Check::ok);
  }

  public boolean isDraining() {
    return draining;
  }

  /**
   * Graceful shutdown, first half: /readyz turns false, new CONNECTs and agent upgrades get 503,
   * every agent session gets GO_AWAY (no new streams; it closes once its streams are done), and
   * this returns when no stream is left, or when {@code grace} has passed. {@link #close()} then
   * ends whatever is still open.
   */
  public void drain(Duration grace) throws InterruptedException {
    draining = true;
    List<TunnelSession> sessions = registry.allSessions();
    log.info(
        "draining: {} agent session(s), {} direct stream(s); open streams may finish within {}",
        sessions.size(),
        directStreams.size(),
        grace);
    for (TunnelSession s : sessions) {
      s.goAway(ErrorCode.NO_ERROR, "the server is shutting down");
    }
    // A session that has sent GO_AWAY closes itself after its last stream, and a direct stream
    // ends with its client's channel: waiting for those channels to close is waiting for the
    // streams. A direct dial that was in flight when the drain began may add one more, so look
    // again until nothing is left.
    long deadline = System.nanoTime() + grace.toNanos();
    List<Channel> open = openStreamChannels();
    while (!open.isEmpty()) {
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        log.warn(
            "grace period of {} is over; closing {} agent session(s) and direct stream(s) still"
                + " open",
            grace,
            open.size());
        return;
      }
      for (Channel c : open) {
        c.closeFuture().await(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
      }
      open = openStreamChannels();
    }
    log.info("drained: no stream left open");
  }

  /** The agent sessions and direct-stream clients whose channels are still open. */
  private List<Channel> openStreamChannels() {
    List<Channel> open = new ArrayList<>();
    for (TunnelSession s : registry.allSessions()) {
      if (s.channel().isOpen()) {
        open.add(s.channel());
      }
    }
    for (Channel c : directStreams.keySet()) {
      if (c.isOpen()) {
        open.add(c);
      }
    }
    return open;
  }

  /** The bound CONNECT address (useful with port 0). */
  public InetSocketAddress connectAddress() {
    return (InetSocketAddress) connectChannel.localAddress();
  }

  public InetSocketAddress agentAddress() {
    return (InetSocketAddress) agentChannel.localAddress();
  }

  public InetSocketAddress adminAddress() {
    return (InetSocketAddress) adminChannel.localAddress();
  }

  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return; // closing twice (a shutdown hook after a failed start, say) is harmless
    }
    started = false;
    for (Channel c : listeners) {
      c.close().syncUninterruptibly();
    }
    // Streams cut short end with resets towards their clients, before the loops shut down (which
    // would close their sockets plainly): a cut transfer must not look complete.
    List<io.netty.util.concurrent.Future<?>> aborted = new ArrayList<>();
    for (TunnelSession s : registry.allSessions()) {
      aborted.add(s.abort("the server is stopping"));
    }
    for (Channel c : directStreams.keySet()) {
      HalfClose.abort(c);
      aborted.add(c.closeFuture());
    }
    for (var f : aborted) {
      f.awaitUninterruptibly(1, TimeUnit.SECONDS);
    }
    Transport.settle(workerGroup); // the resets those closes set off (a splice's other side)
    bossGroup.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
    workerGroup.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
    dialer.close();
    authenticator.close();
    reloadingContexts.forEach(ReloadingSslContext::close);
    tlsReloader.shutdownNow();
    if (apiRoutes != null) {
      apiRoutes.close();
    }
    if (kubernetesClient != null) {
      kubernetesClient.close();
    }
  }
}

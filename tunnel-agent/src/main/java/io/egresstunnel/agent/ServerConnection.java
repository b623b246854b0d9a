package io.egresstunnel.agent;

import io.egresstunnel.proto.AgentHello;
import io.egresstunnel.proto.Dial;
import io.egresstunnel.proto.ErrorCode;
import io.egresstunnel.proto.GoAway;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.config.CommandErrors;
import io.egresstunnel.proto.config.RateLimitedLog;
import io.egresstunnel.proto.net.Addresses;
import io.egresstunnel.proto.net.MaskingWebSocketFrameEncoder;
import io.egresstunnel.proto.net.SlicingWebSocketFrameDecoder;
import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.proto.session.SessionPipeline;
import io.egresstunnel.proto.session.SpliceTap;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.proto.session.TunnelStream;
import io.egresstunnel.proto.session.UpgradeRefusal;
import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.websocketx.WebSocket13FrameEncoder;
import io.netty.handler.codec.http.websocketx.WebSocketClientHandshakeException;
import io.netty.handler.codec.http.websocketx.WebSocketClientProtocolConfig;
import io.netty.handler.codec.http.websocketx.WebSocketClientProtocolHandler;
import io.netty.handler.codec.http.websocketx.WebSocketDecoderConfig;
import io.netty.handler.codec.http.websocketx.WebSocketFrameEncoder;
import io.netty.handler.ssl.SslContext;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's tunnels through one server URL. Each {@link Tunnel} connects, upgrades to a
 * websocket, says hello, serves the server's dials, and reconnects with backoff whenever its
 * session ends, until stopped.
 *
 * <p>A URL may lead to several servers (a load balancer). The {@link ServerSet} shared by all URLs
 * holds one session per server id: a session that reaches a server already held is a duplicate. It
 * sends GO_AWAY(NO_ERROR) and closes, and its tunnel tries again after the sync interval (doubling
 * up to the longest reconnect delay). A duplicate from another address than the held session's
 * means two servers share one id: it goes away with GO_AWAY(DUPLICATE_SERVER_ID), so that server's
 * log says so too, and the agent warns. While the agent holds fewer servers than the hellos
 * announce and was given fewer URLs than there are servers, each URL keeps more tunnels, {@link
 * ServerSet#tunnelsPerUrl()} in all, of which at most {@link #MAX_ATTEMPTS_PER_URL} are connecting
 * or waiting to retry at once.
 */
final class ServerConnection {
  private static final Logger log = LoggerFactory.getLogger(ServerConnection.class);

  /** The most tunnels through one URL that are connecting or waiting to retry at once. */
  static final int MAX_ATTEMPTS_PER_URL = 4;

  /** Duplicates in a row through one URL after which the agent warns (and every 10th after). */
  private static final int DUPLICATE_STREAK_WARNING = 3;

  private final URI uri;
  private final AgentConfig config;
  private final EventLoopGroup group;
  private final Supplier<SslContext> tls;
  private final AgentHello hello;
  private final DialHandler dialHandler;
  private final ServerSet servers;
  private final Runnable onServersChanged;
  private final AgentMetrics metrics;
  private final boolean masking;
  private final List<Tunnel> tunnels = new ArrayList<>(); // guarded by this
  private final Set<Attempt> attempts = ConcurrentHashMap.newKeySet(); // every open connection
  private int duplicateStreak; // guarded by this
  private volatile boolean stopped;
  private volatile ServerRefusal lastRefusal;

  /** Refused upgrades: a misconfigured agent retries every few seconds, so one line a minute. */
  private final RateLimitedLog refusals = new RateLimitedLog(log, Duration.ofMinutes(1));

  /** Servers at two addresses with one id: found again at every sync interval. */
  private final RateLimitedLog idConflicts = new RateLimitedLog(log, Duration.ofMinutes(1));

  private volatile String failure;

  /**
   * @param servers the servers held through every URL
   * @param onServersChanged runs when a server is held, freed or learned (to add tunnels)
   * @param metrics where the sessions and reconnects are counted
   */
  ServerConnection(
      URI base,
      AgentConfig config,
      EventLoopGroup group,
      Supplier<SslContext> tls,
      AgentHello hello,
      DialHandler dialHandler,
      ServerSet servers,
      Runnable onServersChanged,
      AgentMetrics metrics) {
    this.uri = tunnelUri(base);
    this.config = config;
    this.group = group;
    this.tls = tls;
    this.hello = hello;
    this.dialHandler = dialHandler;
    this.servers = servers;
    this.onServersChanged = onServersChanged;
    this.metrics = metrics;
    upgradeHeaders(config); // a token file that cannot be read fails the start
    this.masking =
        switch (config.masking()) {
          case ALWAYS -> true;
          case NEVER -> false;
          case AUTO -> !"wss".equals(uri.getScheme());
        };
  }

  /**
   * With {@code --websocket-masking auto} the hello offers {@link AgentHello#CAP_UNMASKED_FRAMES};
   * once the server's hello accepts it, frames from here on go unmasked (on {@code wss://} they
   * were not masked anyway). Runs on the session's event loop, before anything else is written.
   */
  private void stopMaskingIfAccepted(TunnelSession s) {
    if (!masking
        || config.masking() != AgentConfig.Masking.AUTO
        || (s.serverHello().capabilities() & AgentHello.CAP_UNMASKED_FRAMES) == 0) {
      return;
    }
    ChannelPipeline p = s.channel().pipeline();
    if (p.get(WebSocketFrameEncoder.class) != null) {
      p.replace(WebSocketFrameEncoder.class, "ws-encoder", new WebSocket13FrameEncoder(false));
      s.sendsUnmasked();
      log.debug("server {} accepts unmasked frames: masking off", uri);
    }
  }

  /**
   * The node (always) and the bearer token (with --token-file) for the upgrade request. The token
   * file is read for every connection, so that a rotated ServiceAccount token is used; it is a few
   * hundred bytes on a local volume.
   */
  private static io.netty.handler.codec.http.HttpHeaders upgradeHeaders(AgentConfig config) {
    var h = new io.netty.handler.codec.http.DefaultHttpHeaders();
    h.set(SessionPipeline.NODE_HEADER, config.nodeName());
    Path tokenFile = config.credentials().tokenFile();
    if (tokenFile != null) {
      try {
        String token = java.nio.file.Files.readString(tokenFile).strip();
        if (token.isEmpty()) {
          throw new IllegalArgumentException("--token-file " + tokenFile + ": the file is empty");
        }
        h.set(io.netty.handler.codec.http.HttpHeaderNames.AUTHORIZATION, "Bearer " + token);
      } catch (java.io.IOException e) {
        throw new IllegalArgumentException(
            "--token-file " + tokenFile + ": " + CommandErrors.describe(e), e);
      }
    }
    return h;
  }

  /** The URL with the tunnel path, unless the base already names a path. */
  static URI tunnelUri(URI base) {
    String path = base.getPath();
    if (path == null || path.isEmpty() || path.equals("/")) {
      return base.resolve(SessionPipeline.TUNNEL_PATH);
    }
    return base;
  }

  URI uri() {
    return uri;
  }

  /**
   * The last answer to an upgrade through this URL that refused it, or null if none did since a
   * session through this URL was last established.
   */
  ServerRefusal lastRefusal() {
    return lastRefusal;
  }

  /**
   * This URL's open connections, for status: each with its session once the hellos are exchanged,
   * null while it is still connecting.
   */
  List<TunnelSession> connections() {
    List<TunnelSession> open = new ArrayList<>();
    for (Attempt a : attempts) {
      Channel c = a.channel;
      if (c != null && c.isActive()) {
        open.add(a.session);
      }
    }
    return open;
  }

  /**
   * Why a tunnel through this URL stopped trying to connect although the agent was not stopped, or
   * null. Only an Error (out of memory) or an event loop that refuses work gets here; every other
   * failure is retried. /healthz reports it.
   */
  String failure() {
    return failure;
  }

  void start() {
    reconcile();
  }

  /**
   * Stops reconnecting and closes every connection through this URL at once; their streams end with
   * resets towards their targets. Returns when those have run.
   */
  void stop() {
    stopped = true;
    for (Attempt a : attempts) {
      TunnelSession s = a.session;
      Channel c = a.channel;
      if (s != null) {
        s.abort("the agent is stopping").awaitUninterruptibly(1, TimeUnit.SECONDS);
      } else if (c != null) {
        c.close();
      }
    }
  }

  /**
   * Stops reconnecting and sends GO_AWAY(NO_ERROR) on every session: the servers open no new
   * streams on them, and each closes once its streams have ended. Connections without a session
   * close at once.
   */
  void drain(String message) {
    stopped = true;
    for (Attempt a : attempts) {
      a.drain(message);
    }
  }

  /**
   * One future per connection through this URL that has not finished yet; each completes once its
   * connection has closed and its server has been freed.
   */
  List<CompletableFuture<Void>> unfinished() {
    List<CompletableFuture<Void>> open = new ArrayList<>();
    for (Attempt a : attempts) {
      open.add(a.finished);
    }
    return open;
  }

  /**
   * Adds tunnels until this URL keeps as many as the agent needs, at most {@link
   * #MAX_ATTEMPTS_PER_URL} of them not holding a session. Beyond the first, only while a server is
   * missing.
   */
  synchronized void reconcile() {
    if (stopped) {
      return;
    }
    int wanted = servers.tunnelsPerUrl();
    int attempting = 0;
    for (Tunnel t : tunnels) {
      attempting += t.holding() ? 0 : 1;
    }
    while (tunnels.size() < wanted
        && attempting < MAX_ATTEMPTS_PER_URL
        && (tunnels.isEmpty() || servers.missing())) {
      Tunnel t = new Tunnel();
      tunnels.add(t);
      attempting++;
      if (tunnels.size() > 1) {
        log.info(
            "tunnel to {}: holding {} of {} servers {}; opening tunnel {} through this URL",
            uri,
            servers.held(),
            servers.serverCount(),
            servers.ids(),
            tunnels.size());
      }
      try {
        group.execute(t::connect);
      } catch (RejectedExecutionException e) {
        if (!stopped) {
          failure = "tunnel to " + uri + " cannot connect: its event loop refused it";
          log.error("{}; /healthz now reports it", failure);
        }
        return; // the agent is closing
      }
    }
  }

  /**
   * Whether {@code t}, about to reconnect, should end instead: this URL keeps more tunnels than
   * needed, or every server is held and others remain.
   */
  private synchronized boolean retire(Tunnel t) {
    if (tunnels.size() > servers.tunnelsPerUrl() || (tunnels.size() > 1 && !servers.missing())) {
      tunnels.remove(t);
      return true;
    }
    return false;
  }

  /**
   * One tunnel through this URL: connects, holds a session to a server not held yet, and connects
   * again (with backoff) when it closes, when its server goes away, or after the sync interval when
   * it reached a server already held.
   */
  private final class Tunnel {
    private final Backoff backoff =
        new Backoff(config.limits().reconnectMin(), config.limits().reconnectMax());
    private final Backoff syncBackoff =
        new Backoff(
            config.limits().syncInterval(),
            max(config.limits().syncInterval(), config.limits().reconnectMax()));
    private volatile TunnelSession held;

    boolean holding() {
      return held != null;
    }

    /**
     * One connection attempt. Whatever fails here, even something unforeseen, schedules the next
     * attempt with backoff: the loop must never end while the agent runs.
     */
    void connect() {
      if (stopped) {
        return;
      }
      try {
        dial();
      } catch (RuntimeException e) {
        log.warn(
            "tunnel to {}: connecting failed unexpectedly: {}", uri, CommandErrors.describe(e));
        log.debug("tunnel to {}: stack trace", uri, e);
        next(backoff.nextDelayMillis(), "cannot connect: " + CommandErrors.describe(e));
      } catch (Error e) {
        // Out of memory or a broken installation: retrying is no use, a restart may be.
        failure = "tunnel to " + uri + " stopped: " + e;
        log.error("{}; /healthz now reports it", failure, e);
        throw e;
      }
    }

    private void dial() {
      AgentConfig.Limits limits = config.limits();
      int port = uri.getPort() > 0 ? uri.getPort() : SessionPipeline.DEFAULT_AGENT_PORT;
      io.netty.handler.codec.http.HttpHeaders headers;
      try {
        headers = upgradeHeaders(config);
      } catch (IllegalArgumentException e) {
        next(backoff.nextDelayMillis(), e.getMessage());
        return;
      }
      Attempt attempt = new Attempt(this);
      new Bootstrap()
          .group(group)
          .channel(Transport.socketChannel())
          .option(ChannelOption.TCP_NODELAY, true)
          .option(
              ChannelOption.WRITE_BUFFER_WATER_MARK,
              new WriteBufferWaterMark(512 * 1024, 2 * 1024 * 1024))
          .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) limits.handshakeTimeout().toMillis())
          .handler(new Initializer(port, headers, attempt))
          .connect(uri.getHost(), port)
          .addListener(
              f -> {
                if (!f.isSuccess()) {
                  next(
                      backoff.nextDelayMillis(),
                      "cannot connect: " + CommandErrors.describe(f.cause()));
                  return;
                }
                Channel c = ((io.netty.channel.ChannelFuture) f).channel();
                attempt.channel = c;
                attempts.add(attempt);
                if (stopped) {
                  c.close(); // stop() ran meanwhile and did not see this channel
                }
                c.closeFuture().addListener(x -> attempt.closed());
              });
    }

    /**
     * Connects again after {@code delayMillis}, unless stopped or no longer needed; logs {@code
     * why} unless it is null.
     */
    void next(long delayMillis, String why) {
      held = null;
      if (stopped) {
        return;
      }
      if (retire(this)) {
        log.debug("tunnel to {}: {}; this tunnel is no longer needed", uri, why);
        return;
      }
      if (why != null) {
        log.info("tunnel to {}: {}; reconnecting in {} ms", uri, why, delayMillis);
      }
      try {
        group.schedule(this::connect, delayMillis, TimeUnit.MILLISECONDS);
        metrics.reconnecting();
      } catch (RejectedExecutionException e) {
        if (!stopped) {
          // Not a shutdown of the agent: this tunnel cannot retry, so the agent is broken.
          failure = "tunnel to " + uri + " cannot reconnect: its event loop refused the retry";
          log.error("{}; /healthz now reports it", failure);
        }
      }
    }
  }

  private static Duration max(Duration a, Duration b) {
    return a.compareTo(b) >= 0 ? a : b;
  }

  /**
   * One connection of a tunnel, from connect to close, and the listener of its session. All its
   * events run on its channel's event loop.
   */
  private final class Attempt implements TunnelSession.Listener {
    private final Tunnel tunnel;
    private final CompletableFuture<Void> finished = new CompletableFuture<>();
    private volatile Channel channel;
    private volatile TunnelSession session;
    private boolean holds; // its session held its server
    private boolean settled; // its tunnel has moved on: nothing this attempt does reconnects
    private boolean refused; // the server answered the upgrade with a refusal

    Attempt(Tunnel tunnel) {
      this.tunnel = tunnel;
    }

    void drain(String message) {
      Channel c = channel;
      if (c == null) {
        return;
      }
      c.eventLoop()
          .execute(
              () -> {
                settled = true;
                TunnelSession s = session;
                if (s != null) {
                  s.goAway(ErrorCode.NO_ERROR, message);
                } else {
                  c.close();
                }
              });
    }

    @Override
    public void onEstablished(TunnelSession s) {
      session = s;
      stopMaskingIfAccepted(s);
      String id = ServerSet.serverId(s);
      if (stopped) {
        settled = true;
        s.goAway(ErrorCode.NO_ERROR, "the agent is shutting down");
        return;
      }
      TunnelSession holder = servers.claim(s);
      if (holder == null) {
        holds = true;
        lastRefusal = null;
        tunnel.held = s;
        tunnel.backoff.reset();
        tunnel.syncBackoff.reset();
        synchronized (ServerConnection.this) {
          duplicateStreak = 0;
        }
        log.info(
            "tunnel to {} established: server {} (holding {} of {} servers {}), protocol {},"
                + " node {}",
            uri,
            id,
            servers.held(),
            servers.serverCount(),
            servers.ids(),
            s.serverHello().version(),
            hello.nodeName());
        onServersChanged.run();
        return;
      }
      // A duplicate: say so, so that the server routes nothing new here, and close once drained.
      settled = true;
      long delay = tunnel.syncBackoff.nextDelayMillis();
      String here = Addresses.ip(s.channel().remoteAddress());
      String there = Addresses.ip(holder.channel().remoteAddress());
      if (!here.equals(there)) {
        // Two addresses, one id: two servers configured alike (or one server reached both
        // directly and through a proxy). Tell this server too, so that its operator sees it.
        s.goAway(
            ErrorCode.DUPLICATE_SERVER_ID,
            "server id "
                + id
                + " is also the id of the server at "
                + there
                + " (this is "
                + here
                + ")");
        idConflicts.warn(
            id + " " + here + " " + there,
            "servers at {} and {} both report server id {}: the agent keeps one tunnel per server"
                + " id, so it cannot hold both; give each server its own --server-id (unless both"
                + " addresses lead to one server). Closing the tunnel through {}, next try in {}"
                + " ms",
            there,
            here,
            id,
            uri,
            delay);
        tunnel.next(delay, null);
        onServersChanged.run();
        return;
      }
      s.goAway(ErrorCode.NO_ERROR, "duplicate tunnel to server " + id);
      int streak;
      synchronized (ServerConnection.this) {
        streak = ++duplicateStreak;
      }
      if (servers.missing()
          && (streak == DUPLICATE_STREAK_WARNING
              || (streak > DUPLICATE_STREAK_WARNING && streak % 10 == 0))) {
        log.warn(
            "holding {} of {} servers {} through {}: the load balancer keeps sending us to"
                + " server {} ({} times in a row); give every server's URL with --server, or"
                + " make the load balancer spread connections. Next try in {} ms",
            servers.held(),
            servers.serverCount(),
            servers.ids(),
            uri,
            id,
            streak,
            delay);
      } else {
        log.info(
            "tunnel to {} reached server {} again (holding {} of {} servers {}); closing the"
                + " duplicate, next try in {} ms",
            uri,
            id,
            servers.held(),
            servers.serverCount(),
            servers.ids(),
            delay);
      }
      tunnel.next(delay, null);
      onServersChanged.run(); // the hello may have announced more servers
    }

    @Override
    public void onDial(TunnelStream stream, Dial dial) {
      dialHandler.dial(stream, dial);
    }

    @Override
    public void onGoAway(TunnelSession s, GoAway goAway) {
      String id = s.serverHello() == null ? uri.toString() : ServerSet.serverId(s);
      log.info("server {} is going away: {} {}", id, goAway.code(), goAway.message());
      if (holds && !settled && goAway.code() == ErrorCode.NO_ERROR) {
        // The server drains: its streams finish on this session, and a new tunnel reaches a
        // live server (or this one, restarted) meanwhile.
        settled = true;
        servers.release(s);
        tunnel.next(tunnel.backoff.nextDelayMillis(), "server " + id + " is going away");
        onServersChanged.run();
      }
    }

    void closed() {
      TunnelSession s = session;
      if (holds) {
        servers.release(s);
      }
      if (!settled) {
        settled = true;
        tunnel.next(
            tunnel.backoff.nextDelayMillis(),
            holds
                ? "session to server " + ServerSet.serverId(s) + " closed"
                // a refusal was logged (once a minute) as it came
                : refused ? null : "connection closed");
        if (holds) {
          onServersChanged.run();
        }
      }
      attempts.remove(this);
      finished.complete(null);
    }
  }

  private final class Initializer extends ChannelInitializer<Channel> {
    private final int port;
    private final io.netty.handler.codec.http.HttpHeaders upgradeHeaders;
    private final Attempt attempt;

    Initializer(int port, io.netty.handler.codec.http.HttpHeaders upgradeHeaders, Attempt attempt) {
      this.port = port;
      this.upgradeHeaders = upgradeHeaders;
      this.attempt = attempt;
    }

    @Override
    protected void initChannel(Channel ch) {
      AgentConfig.Limits limits = config.limits();
      ChannelPipeline p = ch.pipeline();
      ch.config().setRecvByteBufAllocator(new Transport.LimitedReadAllocator());
      if (tls != null) {
        p.addLast(
            SessionPipeline.TLS_HANDLER, tls.get().newHandler(ch.alloc(), uri.getHost(), port));
      }
      p.addLast("http", new HttpClientCodec());
      p.addLast("http-aggregator", new HttpObjectAggregator(8192));
      p.addLast("upgrade-refusal", new RefusalWatcher(attempt));
      p.addLast(
          "websocket",
          new WebSocketClientProtocolHandler(
              WebSocketClientProtocolConfig.newBuilder()
                  .webSocketUri(uri)
                  .handshakeTimeoutMillis(limits.handshakeTimeout().toMillis())
                  .maxFramePayloadLength(Limits.HEADER_SIZE + limits.maxFramePayload())
                  .performMasking(masking)
                  .customHeaders(upgradeHeaders)
                  .allowMaskMismatch(true)
                  .build()));
      p.addLast("upgrade-watch", new UpgradeWatcher(attempt));
    }
  }

  /** Installs the tunnel session once the websocket upgrade has succeeded. */
  private final class UpgradeWatcher extends ChannelInboundHandlerAdapter {
    private final Attempt attempt;

    UpgradeWatcher(Attempt attempt) {
      this.attempt = attempt;
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
      if (evt == WebSocketClientProtocolHandler.ClientHandshakeStateEvent.HANDSHAKE_COMPLETE) {
        AgentConfig.Limits limits = config.limits();
        TunnelSession.Config sessionConfig =
            new TunnelSession.Config(
                limits.initialWindow(),
                limits.maxFramePayload(),
                limits.maxStreams(),
                limits.maxPendingDials(),
                limits.handshakeTimeout().toMillis());
        ChannelPipeline p = ctx.pipeline();
        if (masking) { // Netty's encoder masks four bytes at a time through ByteBuf accessors
          p.replace(WebSocketFrameEncoder.class, "ws-encoder", new MaskingWebSocketFrameEncoder());
        }
        if (SlicingWebSocketFrameDecoder.enabled()) {
          SlicingWebSocketFrameDecoder.replaceStockDecoder(
              p,
              WebSocketDecoderConfig.newBuilder()
                  .expectMaskedFrames(false)
                  .allowMaskMismatch(true)
                  .maxFramePayloadLength(Limits.HEADER_SIZE + limits.maxFramePayload())
                  .build());
        }
        TunnelSession session =
            TunnelSession.agent(sessionConfig, hello, attempt).withMetrics(metrics.tunnel());
        SessionPipeline.install(p, limits.pingInterval(), limits.pingTimeout(), session);
        if (!masking) {
          session.sendsUnmasked();
        }
        SpliceTap.installIfPossible(p, session);
        p.remove(this);
        return;
      }
      ctx.fireUserEventTriggered(evt);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      if (attempt.refused && cause instanceof WebSocketClientHandshakeException) {
        ctx.close(); // RefusalWatcher has told why
        return;
      }
      log.warn("tunnel to {} failed: {}", uri, cause.getMessage());
      ctx.close();
    }
  }

  /**
   * Reads the server's answer to the upgrade before the websocket handshaker does: an answer other
   * than 101 is a refusal, whose reason (the body's first line, and the kind the server names in
   * the {@value UpgradeRefusal#HEADER} header) is logged at WARN, counted, and kept for {@code
   * /readyz}. The answer then goes on to the handshaker, which fails the handshake.
   */
  private final class RefusalWatcher extends ChannelInboundHandlerAdapter {
    private final Attempt attempt;

    RefusalWatcher(Attempt attempt) {
      this.attempt = attempt;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      if (msg instanceof FullHttpResponse response) {
        ctx.pipeline().remove(this);
        if (!HttpResponseStatus.SWITCHING_PROTOCOLS.equals(response.status())) {
          refused(response);
        }
      }
      ctx.fireChannelRead(msg);
    }

    private void refused(FullHttpResponse response) {
      ServerRefusal r =
          new ServerRefusal(
              uri,
              response.status().code(),
              UpgradeRefusal.ofHeader(response.headers().get(UpgradeRefusal.HEADER)),
              ServerRefusal.firstLine(
                  response.content().toString(StandardCharsets.UTF_8),
                  response.status().reasonPhrase()),
              Instant.now());
      attempt.refused = true;
      lastRefusal = r;
      metrics.upgradeRefused(r.reason());
      refusals.warn(
          r.toString(),
          "server {} refused the tunnel for node {}: {} ({}): {}; retrying with backoff (at most"
              + " --reconnect-max)",
          uri,
          hello.nodeName(),
          r.code(),
          r.reason().label,
          r.message());
    }
  }
}

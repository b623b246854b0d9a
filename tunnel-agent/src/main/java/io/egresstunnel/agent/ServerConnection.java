package io.egresstunnel.agent;

import io.egresstunnel.proto.AgentHello;
import io.egresstunnel.proto.Dial;
import io.egresstunnel.proto.GoAway;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.proto.session.SessionPipeline;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.proto.session.TunnelStream;
import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.websocketx.WebSocketClientProtocolConfig;
import io.netty.handler.codec.http.websocketx.WebSocketClientProtocolHandler;
import io.netty.handler.ssl.SslContext;
import java.net.URI;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's tunnel to one server URL: connects, upgrades to a websocket, says hello, serves the
 * server's dials, and reconnects with backoff whenever the session ends, until stopped.
 */
final class ServerConnection implements TunnelSession.Listener {
  private static final Logger log = LoggerFactory.getLogger(ServerConnection.class);

  private final URI uri;
  private final AgentConfig config;
  private final EventLoopGroup group;
  private final Supplier<SslContext> tls;
  private final AgentHello hello;
  private final DialHandler dialHandler;
  private final Backoff backoff;
  private final boolean masking;
  private volatile boolean stopped;
  private volatile TunnelSession session;
  private volatile Channel channel;

  ServerConnection(
      URI base,
      AgentConfig config,
      EventLoopGroup group,
      Supplier<SslContext> tls,
      AgentHello hello,
      DialHandler dialHandler) {
    this.uri = tunnelUri(base);
    this.config = config;
    this.group = group;
    this.tls = tls;
    this.hello = hello;
    this.dialHandler = dialHandler;
    this.backoff = new Backoff(config.limits().reconnectMin(), config.limits().reconnectMax());
    upgradeHeaders(config); // a token file that cannot be read fails the start
    this.masking =
        switch (config.masking()) {
          case ALWAYS -> true;
          case NEVER -> false;
          case AUTO -> !"wss".equals(uri.getScheme());
        };
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
          throw new IllegalArgumentException("--token-file " + tokenFile + " is empty");
        }
        h.set(io.netty.handler.codec.http.HttpHeaderNames.AUTHORIZATION, "Bearer " + token);
      } catch (java.io.IOException e) {
        throw new IllegalArgumentException(
            "cannot read --token-file " + tokenFile + ": " + e.getMessage(), e);
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

  /** The current session, if established. */
  TunnelSession session() {
    TunnelSession s = session;
    return s != null && s.isEstablished() ? s : null;
  }

  void start() {
    connect();
  }

  void stop() {
    stopped = true;
    Channel c = channel;
    if (c != null) {
      c.close();
    }
  }

  private void connect() {
    if (stopped) {
      return;
    }
    AgentConfig.Limits limits = config.limits();
    int port = uri.getPort() > 0 ? uri.getPort() : ("wss".equals(uri.getScheme()) ? 443 : 80);
    io.netty.handler.codec.http.HttpHeaders headers;
    try {
      headers = upgradeHeaders(config);
    } catch (IllegalArgumentException e) {
      retry(e.getMessage());
      return;
    }
    new Bootstrap()
        .group(group)
        .channel(Transport.socketChannel())
        .option(ChannelOption.TCP_NODELAY, true)
        .option(ChannelOption.RCVBUF_ALLOCATOR, Transport.dataReadAllocator())
        .option(
            ChannelOption.WRITE_BUFFER_WATER_MARK,
            new WriteBufferWaterMark(512 * 1024, 2 * 1024 * 1024))
        .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) limits.handshakeTimeout().toMillis())
        .handler(new Initializer(port, headers))
        .connect(uri.getHost(), port)
        .addListener(
            f -> {
              if (!f.isSuccess()) {
                retry("cannot connect: " + f.cause().getMessage());
                return;
              }
              Channel c = ((io.netty.channel.ChannelFuture) f).channel();
              channel = c;
              c.closeFuture().addListener(x -> retry("connection closed"));
            });
  }

  private void retry(String why) {
    session = null;
    if (stopped) {
      return;
    }
    long delay = backoff.nextDelayMillis();
    log.info("tunnel to {}: {}; reconnecting in {} ms", uri, why, delay);
    group.schedule(this::connect, delay, TimeUnit.MILLISECONDS);
  }

  // ---- session events ------------------------------------------------------------------------

  @Override
  public void onEstablished(TunnelSession s) {
    session = s;
    backoff.reset();
    log.info(
        "tunnel to {} established: server {} (1 of {}), protocol {}, node {}",
        uri,
        s.serverHello().serverId(),
        s.serverHello().serverCount(),
        s.serverHello().version(),
        hello.nodeName());
  }

  @Override
  public void onDial(TunnelStream stream, Dial dial) {
    dialHandler.dial(stream, dial);
  }

  @Override
  public void onGoAway(TunnelSession s, GoAway goAway) {
    log.info("server {} is going away: {} {}", uri, goAway.code(), goAway.message());
  }

  private final class Initializer extends ChannelInitializer<Channel> {
    private final int port;
    private final io.netty.handler.codec.http.HttpHeaders upgradeHeaders;

    Initializer(int port, io.netty.handler.codec.http.HttpHeaders upgradeHeaders) {
      this.port = port;
      this.upgradeHeaders = upgradeHeaders;
    }

    @Override
    protected void initChannel(Channel ch) {
      AgentConfig.Limits limits = config.limits();
      ChannelPipeline p = ch.pipeline();
      if (tls != null) {
        p.addLast("tls", tls.get().newHandler(ch.alloc(), uri.getHost(), port));
      }
      p.addLast("http", new HttpClientCodec());
      p.addLast("http-aggregator", new HttpObjectAggregator(8192));
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
      p.addLast("upgrade-watch", new UpgradeWatcher());
    }
  }

  /** Installs the tunnel session once the websocket upgrade has succeeded. */
  private final class UpgradeWatcher extends ChannelInboundHandlerAdapter {
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
        SessionPipeline.install(
            p,
            limits.pingInterval(),
            limits.pingTimeout(),
            TunnelSession.agent(sessionConfig, hello, ServerConnection.this));
        p.remove(this);
        return;
      }
      ctx.fireUserEventTriggered(evt);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      log.warn("tunnel to {} failed: {}", uri, cause.getMessage());
      ctx.close();
    }
  }
}

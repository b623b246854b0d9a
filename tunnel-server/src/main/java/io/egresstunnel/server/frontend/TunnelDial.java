package io.egresstunnel.server.frontend;

import io.egresstunnel.proto.DialStatus;
import io.egresstunnel.proto.net.Addresses;
import io.egresstunnel.proto.net.TargetDialer;
import io.egresstunnel.proto.session.DialFailedException;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.proto.session.TunnelStream;
import io.egresstunnel.server.PeerCertificates;
import io.egresstunnel.server.ServerConfig;
import io.egresstunnel.server.TargetRoutes;
import io.egresstunnel.server.TunnelServer;
import io.egresstunnel.server.admin.ServerMetrics;
import io.egresstunnel.server.agents.AgentRegistry;
import io.netty.channel.Channel;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.util.concurrent.Future;
import java.security.cert.X509Certificate;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One dial for a frontend, whatever protocol the apiserver speaks (HTTP CONNECT or Konnectivity's
 * GRPC): admission, routing, the dial through the node's agent (or directly) with its limits,
 * timeout, draining retry and metrics. The frontend says what its client gets ({@link Client}).
 */
final class TunnelDial {
  private static final Logger log = LoggerFactory.getLogger(TunnelDial.class);

  /** The frontend's side of a dial. Every method runs on the client channel's event loop. */
  interface Client {
    /** Which protocol the apiserver speaks here, for the metrics. */
    ServerMetrics.Protocol protocol();

    /** The local end of the stream: the CONNECT socket, or the gRPC call's HTTP/2 stream. */
    Channel channel();

    /**
     * Whether the local end may move onto the agent session's event loop. A socket may; an HTTP/2
     * stream lives on its connection's loop.
     */
    boolean movable();

    /** The agent has the target: install {@code stream.newRelayHandler()}, answer, start it. */
    void connected(TunnelStream stream, String node);

    /** The target is connected directly: splice the two, answer. */
    void connectedDirect(Channel target);

    /** The dial failed; {@code status} is the HTTP status CONNECT answers, with a reason. */
    void failed(HttpResponseStatus status, String reason);
  }

  /** A frontend's client on a channel handler context: the parts every frontend shares. */
  abstract static class ContextClient implements Client {
    final io.netty.channel.ChannelHandlerContext ctx;
    private final ServerMetrics.Protocol protocol;
    private final boolean movable;

    ContextClient(
        io.netty.channel.ChannelHandlerContext ctx,
        ServerMetrics.Protocol protocol,
        boolean movable) {
      this.ctx = ctx;
      this.protocol = protocol;
      this.movable = movable;
    }

    @Override
    public ServerMetrics.Protocol protocol() {
      return protocol;
    }

    @Override
    public Channel channel() {
      return ctx.channel();
    }

    @Override
    public boolean movable() {
      return movable;
    }
  }

  private final TunnelServer server;
  private final Client client;
  private final ConnectTarget target;
  private long startNanos;
  private boolean retriedDraining;

  /** For a default-route dial: the agents to try in order, and which one is being tried. */
  private List<TunnelSession> defaultRoute;

  private int defaultRouteTry;

  private boolean movedFromSilentSession;

  private TunnelDial(TunnelServer server, Client client, ConnectTarget target) {
    this.server = server;
    this.client = client;
    this.target = target;
  }

  /**
   * Why a client of {@code protocol} is refused when the server is pinned to the other, or null.
   */
  static String protocolRefusal(TunnelServer server, ServerMetrics.Protocol protocol) {
    ServerConfig.ApiserverProtocol pinned = server.config().apiserverProtocol();
    if (protocol == ServerMetrics.Protocol.GRPC && !pinned.servesGrpc()) {
      return "this tunnel server serves HTTP CONNECT only (--apiserver-protocol "
          + pinned.flagValue()
          + "); configure the apiserver's egress selector with proxyProtocol: HTTPConnect";
    }
    if (protocol == ServerMetrics.Protocol.CONNECT && !pinned.servesConnect()) {
      return "this tunnel server serves GRPC only (--apiserver-protocol "
          + pinned.flagValue()
          + "); configure the apiserver's egress selector with proxyProtocol: GRPC";
    }
    return null;
  }

  /**
   * Why a client may not dial at all (a certificate name not allowed), or null. Checked before the
   * request's target is looked at.
   */
  static String refusal(TunnelServer server, X509Certificate peer) {
    List<String> allowed = server.config().security().clientAllowedNames();
    if (!allowed.isEmpty()) {
      String cn = peer == null ? null : PeerCertificates.commonName(peer);
      if (cn == null || !allowed.contains(cn)) {
        return "the client certificate CN="
            + cn
            + " may not use this tunnel (--client-allowed-names "
            + String.join(",", allowed)
            + ")";
      }
    }
    return null;
  }

  /** Routes {@code target} and dials it; the outcome goes to {@code client}. */
  static void start(TunnelServer server, Client client, ConnectTarget target) {
    TunnelDial dial = new TunnelDial(server, client, target);
    dial.startNanos = System.nanoTime();
    client.channel().attr(TunnelStream.PROTOCOL).set(client.protocol().label);
    TargetRoutes.Decision d = server.routes().decide(target.host(), target.port());
    server.metrics().routed(d.kind());
    switch (d.kind()) {
      case NODE, NETWORK -> dial.viaAgent(d.node());
      case DIRECT -> dial.direct();
      case REJECTED -> client.failed(HttpResponseStatus.SERVICE_UNAVAILABLE, d.reason());
      case DEFAULT_ROUTE -> {
        if (d.agents().isEmpty()) {
          server.metrics().noAgent(client.protocol());
          client.failed(
              HttpResponseStatus.SERVICE_UNAVAILABLE, d.reason() + " (target " + target + ")");
        } else {
          dial.defaultRoute = d.agents();
          dial.tryDefaultRoute(0);
        }
      }
    }
  }

  private void viaAgent(String node) {
    TunnelSession session = server.registry().session(node);
    if (session == null && server.config().routing().fallbackDirect()) {
      log.debug("no agent for node {}: dialling {} directly (--fallback-direct)", node, target);
      server.metrics().fallbackDirect();
      direct();
      return;
    }
    if (session == null) {
      server.metrics().noAgent(client.protocol());
      client.failed(
          HttpResponseStatus.SERVICE_UNAVAILABLE,
          "no agent connected for node " + node + " (target " + target + ")");
      return;
    }
    openOnSessionLoop(session, node);
  }

  /**
   * Tries the {@code i}th agent chosen for the default route; a session that can no longer take the
   * stream is passed over for the next.
   */
  private void tryDefaultRoute(int i) {
    defaultRouteTry = i;
    TunnelSession session = defaultRoute.get(i);
    if (!session.isEstablished() || session.isDraining()) {
      if (i + 1 < defaultRoute.size()) {
        tryDefaultRoute(i + 1);
      } else {
        server.metrics().noAgent(client.protocol());
        client.failed(
            HttpResponseStatus.SERVICE_UNAVAILABLE,
            "no agent offering a default route can take " + target + " (each is draining)");
      }
      return;
    }
    openOnSessionLoop(session, AgentRegistry.nodeOf(session));
  }

  private void openOnSessionLoop(TunnelSession session, String node) {
    Channel ch = client.channel();
    if (ch.eventLoop() == session.eventLoop() || !client.movable()) {
      openStream(session, node);
      return;
    }
    // Move the client onto the session's event loop: the whole stream then runs on one thread,
    // with no handoff between loops for any read, write or credit. Nothing is in flight now
    // (AUTO_READ is off and the request is consumed), so the move is safe.
    ch.deregister()
        .addListener(
            unregistered -> {
              if (!unregistered.isSuccess()) {
                ch.close();
                return;
              }
              session
                  .eventLoop()
                  .register(ch)
                  .addListener(
                      registered -> {
                        if (registered.isSuccess()) {
                          openStream(session, node);
                        } else {
                          ch.close();
                        }
                      });
            });
  }

  private void openStream(TunnelSession session, String node) {
    long dialMillis = server.config().limits().dialTimeout().toMillis();
    Channel ch = client.channel();
    long sentNanos = System.nanoTime();
    Future<TunnelStream> opened =
        session.openStream(target.host(), target.port(), (int) dialMillis, dialMillis + 2_000, ch);
    watchForSilence(session, node, opened, sentNanos);
    opened.addListener(
        f ->
            onClientLoop(
                () -> {
                  if (f.isCancelled()) {
                    return; // the dial moved to another session (watchForSilence)
                  }
                  server
                      .metrics()
                      .dialFinished(client.protocol(), true, f.cause(), startNanos, ch.isActive());
                  if (f.isSuccess()) {
                    TunnelStream stream = (TunnelStream) f.getNow();
                    if (!ch.isActive()) {
                      stream.cancel("the client went away before the dial completed");
                      return;
                    }
                    client.connected(stream, node);
                  } else if (defaultRoute != null
                      && defaultRouteTry + 1 < defaultRoute.size()
                      && ch.isActive()
                      && failsOver(f.cause())) {
                    // Another agent offering the default route may reach what this one cannot.
                    log.info(
                        "default route: agent for node {} could not dial {} ({}); trying node {}",
                        node,
                        target,
                        f.cause().getMessage(),
                        AgentRegistry.nodeOf(defaultRoute.get(defaultRouteTry + 1)));
                    tryDefaultRoute(defaultRouteTry + 1);
                  } else if (defaultRoute == null
                      && !retriedDraining
                      && ch.isActive()
                      && f.cause() instanceof DialFailedException dfe
                      && dfe.status() == DialStatus.DRAINING
                      && server.registry().session(node) != null) {
                    // The session went away under us (a drain, or a duplicate tunnel the agent
                    // closes); another session of the node's agent takes the stream instead.
                    retriedDraining = true;
                    viaAgent(node);
                  } else {
                    if (f.cause() instanceof DialFailedException dfe
                        && dfe.status() == DialStatus.FORBIDDEN) {
                      log.info(
                          "the agent for node {} refused {}: {}", node, target, dfe.getMessage());
                    }
                    failed(f.cause());
                  }
                }));
  }

  /**
   * When the node has another live session, a dial to this one is also a question whether it is
   * alive: the session is probed (a websocket ping) and, if nothing at all comes back from it
   * within {@link #SILENCE_MILLIS}, the dial moves to the other session instead of waiting out the
   * dial timeout. Once per dial.
   */
  private void watchForSilence(
      TunnelSession session, String node, Future<TunnelStream> opened, long sentNanos) {
    if (defaultRoute != null || movedFromSilentSession) {
      return;
    }
    TunnelSession other = server.registry().otherSession(node, session);
    if (other == null) {
      return;
    }
    session.probe();
    long wait = Math.min(SILENCE_MILLIS, server.config().limits().dialTimeout().toMillis() / 2);
    client
        .channel()
        .eventLoop()
        .schedule(
            () -> {
              if (opened.isDone()
                  || !client.channel().isActive()
                  || session.lastHeardNanos() - sentNanos > 0) {
                return; // answered, given up, or the session is alive and the target slow
              }
              TunnelSession next = server.registry().otherSession(node, session);
              if (next == null || !opened.cancel(false)) {
                return;
              }
              movedFromSilentSession = true;
              log.warn(
                  "node {}: the session from {} answered neither a dial nor a ping within {} ms;"
                      + " the dial to {} moves to the session from {}",
                  node,
                  Addresses.text(session.channel().remoteAddress()),
                  wait,
                  target,
                  next.channel().remoteAddress());
              openOnSessionLoop(next, node);
            },
            wait,
            java.util.concurrent.TimeUnit.MILLISECONDS);
  }

  /** How long a probed session may stay silent before its dial moves to the node's other one. */
  static final long SILENCE_MILLIS = 2_000;

  /**
   * Whether a default-route dial that failed so is tried on another agent: the agent could not
   * reach the target's network, was full or going away. Not a refusal by the target, a timeout (the
   * wait would double) or a policy refusal.
   */
  private static boolean failsOver(Throwable cause) {
    if (!(cause instanceof DialFailedException dfe)) {
      return false;
    }
    return dfe.sessionLost()
        || switch (dfe.status()) {
          case UNREACHABLE, TOO_MANY_STREAMS, DRAINING -> true;
          default -> false;
        };
  }

  private void direct() {
    int timeout = (int) server.config().limits().dialTimeout().toMillis();
    Channel ch = client.channel();
    server
        .dialer()
        .connect(ch.eventLoop(), target.host(), target.port(), timeout)
        .addListener(
            f ->
                onClientLoop(
                    () -> {
                      server
                          .metrics()
                          .dialFinished(
                              client.protocol(), false, f.cause(), startNanos, ch.isActive());
                      if (!f.isSuccess()) {
                        failed(f.cause());
                        return;
                      }
                      Channel targetChannel = (Channel) f.getNow();
                      if (!ch.isActive()) {
                        targetChannel.close();
                        return;
                      }
                      log.debug("{} direct", target);
                      client.connectedDirect(targetChannel);
                      server.directStreamStarted(ch, target.toString());
                    }));
  }

  private void failed(Throwable cause) {
    if (cause instanceof DialFailedException dfe) {
      client.failed(statusFor(dfe), dfe.getMessage());
      return;
    }
    DialStatus status = TargetDialer.classify(cause);
    client.failed(
        status == DialStatus.TIMEOUT
            ? HttpResponseStatus.GATEWAY_TIMEOUT
            : HttpResponseStatus.BAD_GATEWAY,
        TargetDialer.describe(cause, target.toString()));
  }

  /** The status the client gets for a failed stream (docs/protocol.md, "Dial statuses"). */
  static HttpResponseStatus statusFor(DialFailedException e) {
    if (e.sessionLost()) {
      return HttpResponseStatus.SERVICE_UNAVAILABLE;
    }
    return switch (e.status()) {
      case FORBIDDEN -> HttpResponseStatus.FORBIDDEN;
      case TIMEOUT -> HttpResponseStatus.GATEWAY_TIMEOUT;
      case TOO_MANY_STREAMS, DRAINING -> HttpResponseStatus.SERVICE_UNAVAILABLE;
      default -> HttpResponseStatus.BAD_GATEWAY;
    };
  }

  /** Runs on the client channel's event loop: at once if already there, so order is kept. */
  private void onClientLoop(Runnable task) {
    Channel ch = client.channel();
    if (ch.eventLoop().inEventLoop()) {
      task.run();
    } else {
      ch.eventLoop().execute(task);
    }
  }
}

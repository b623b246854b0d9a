package io.egresstunnel.proto.session;

import io.egresstunnel.proto.AgentHello;
import io.egresstunnel.proto.DataFrame;
import io.egresstunnel.proto.Dial;
import io.egresstunnel.proto.DialResult;
import io.egresstunnel.proto.DialStatus;
import io.egresstunnel.proto.ErrorCode;
import io.egresstunnel.proto.Frame;
import io.egresstunnel.proto.FrameCodec;
import io.egresstunnel.proto.FrameType;
import io.egresstunnel.proto.GoAway;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.ProtocolException;
import io.egresstunnel.proto.Reset;
import io.egresstunnel.proto.ServerHello;
import io.egresstunnel.proto.WindowUpdate;
import io.egresstunnel.proto.net.Addresses;
import io.egresstunnel.proto.net.SplicePipe;
import io.egresstunnel.proto.net.WebSocketHeader;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.EventLoop;
import io.netty.handler.codec.http.websocketx.CloseWebSocketFrame;
import io.netty.handler.codec.http.websocketx.PingWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketCloseStatus;
import io.netty.handler.codec.http.websocketx.WebSocketServerProtocolHandler;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.collection.IntObjectHashMap;
import io.netty.util.collection.IntObjectMap;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One tunnel session: the websocket between a server and an agent, and the streams multiplexed over
 * it. Sits after {@code FrameDecoder}/{@code FrameEncoder} in the websocket pipeline. Handles the
 * hello exchange and version negotiation, routes frames to their {@link TunnelStream}, and turns
 * protocol errors into a stream reset or a session close, as docs/protocol.md specifies.
 *
 * <p>All state lives on the websocket channel's event loop; public methods may be called from any
 * thread.
 */
public final class TunnelSession extends ChannelInboundHandlerAdapter {
  private static final Logger log = LoggerFactory.getLogger(TunnelSession.class);

  /** Which end of the websocket this is. */
  public enum Role {
    SERVER,
    AGENT
  }

  /**
   * This side's limits.
   *
   * @param initialWindow the per-stream credit this side grants its peer
   * @param maxFramePayload the largest frame body this side accepts
   * @param maxStreams the most concurrent streams (server: it opens; agent: it accepts)
   * @param maxPendingDials the most streams still dialling at once
   * @param handshakeTimeoutMillis how long to wait for the peer's hello
   */
  public record Config(
      int initialWindow,
      int maxFramePayload,
      int maxStreams,
      int maxPendingDials,
      long handshakeTimeoutMillis) {
    public Config {
      Limits.checkWindow("initial window", initialWindow);
      Limits.checkMaxFramePayload("max frame payload", maxFramePayload);
      Limits.check("max streams", maxStreams, 1, Integer.MAX_VALUE);
      Limits.check("max pending dials", maxPendingDials, 1, Integer.MAX_VALUE);
      Limits.check("handshake timeout", handshakeTimeoutMillis, 1, Long.MAX_VALUE);
    }
  }

  /** What a session tells its owner. Called on the session's event loop. */
  public interface Listener {
    /**
     * Server: whether to accept this agent's hello; a non-null reason refuses it (the session
     * closes with that reason before any stream).
     */
    default String refuse(TunnelSession session, AgentHello hello) {
      return null;
    }

    /** The hellos were exchanged; streams may flow. */
    default void onEstablished(TunnelSession session) {}

    /**
     * Agent: the server asks for a dial. The listener must answer exactly once, through {@link
     * TunnelStream#dialSucceeded} or {@link TunnelStream#dialFailed}, unless the stream is reset
     * first.
     */
    default void onDial(TunnelStream stream, Dial dial) {
      stream.dialFailed(DialStatus.INTERNAL_ERROR, "this side accepts no dials");
    }

    /** The peer sent GO_AWAY. */
    default void onGoAway(TunnelSession session, GoAway goAway) {}

    /** A stream ended (it was open or dialling). */
    default void onStreamClosed(TunnelStream stream) {}

    /** The session ended; every stream has ended with it. */
    default void onClosed(TunnelSession session) {}
  }

  private final Role role;
  private final Config config;
  private final Listener listener;
  private final AgentHello ownHello;
  private final String serverId;
  private final int serverCount;
  private final IntObjectMap<TunnelStream> streams = new IntObjectHashMap<>();
  private final List<TunnelStream> toDeliver = new ArrayList<>();

  private ChannelHandlerContext ctx;
  private ScheduledFuture<?> handshakeTimer;
  private boolean established;
  private boolean closing;
  // Splicing (SpliceTap): the tap in front of the websocket decoder, whether the frames this side
  // sends go unmasked (always on the server; on an agent once masking is off), and the pipe that
  // spliced sends pass through.
  private SpliceTap spliceTap;
  private boolean unmaskedSends;
  private SplicePipe sendStaging;
  private boolean goAwaySent;
  private GoAway goAwayReceived;
  private AgentHello agentHello;
  private ServerHello serverHello;
  private int peerInitialWindow;
  private int peerMaxFramePayload;
  private int lastStreamId;
  private int pendingDials;
  private long connectedAtMillis;
  private volatile long lastHeardNanos = System.nanoTime();
  private long closedBytesToPeer;
  private long closedBytesFromPeer;
  private volatile long streamsOpened;
  private SessionMetrics metrics = SessionMetrics.NONE;

  private TunnelSession(
      Role role,
      Config config,
      Listener listener,
      AgentHello ownHello,
      String serverId,
      int serverCount) {
    this.role = role;
    this.unmaskedSends = role == Role.SERVER; // a server never masks
    this.config = config;
    this.listener = listener;
    this.ownHello = ownHello;
    this.serverId = serverId;
    this.serverCount = serverCount;
  }

  /** The server's end: waits for the agent's hello, answers it, then opens streams. */
  public static TunnelSession server(
      Config config, String serverId, int serverCount, Listener listener) {
    Limits.checkName("server id", serverId);
    return new TunnelSession(Role.SERVER, config, listener, null, serverId, serverCount);
  }

  /** The agent's end: sends {@code hello} at once, then accepts dials. */
  public static TunnelSession agent(Config config, AgentHello hello, Listener listener) {
    if (hello.initialWindow() != config.initialWindow()
        || hello.maxFramePayload() != config.maxFramePayload()) {
      throw new IllegalArgumentException("the hello must declare the session's own limits");
    }
    return new TunnelSession(Role.AGENT, config, listener, hello, null, 0);
  }

  /**
   * Reports this session's frames, bytes and streams to {@code metrics} (shared by the process's
   * sessions). Call before the session joins its pipeline.
   */
  public TunnelSession withMetrics(SessionMetrics metrics) {
    this.metrics = metrics;
    return this;
  }

  // ---- accessors -----------------------------------------------------------------------------

  public Role role() {
    return role;
  }

  public Config localConfig() {
    return config;
  }

  /** The agent's hello (server side, once established; agent side, its own). */
  public AgentHello agentHello() {
    return role == Role.AGENT ? ownHello : agentHello;
  }

  /** The server's hello (agent side, once established). */
  public ServerHello serverHello() {
    return serverHello;
  }

  public Channel channel() {
    return ctx.channel();
  }

  public EventLoop eventLoop() {
    return ctx.channel().eventLoop();
  }

  public boolean isEstablished() {
    return established && !closing;
  }

  /** True once either side has announced a drain: no new streams. */
  public boolean isDraining() {
    return goAwaySent || goAwayReceived != null;
  }

  /** When anything last arrived from the peer ({@link System#nanoTime()}). Any thread. */
  public long lastHeardNanos() {
    return lastHeardNanos;
  }

  /**
   * Asks the peer for a sign of life now: a websocket ping, which its websocket layer answers with
   * a pong whatever its streams are doing. {@link #lastHeardNanos()} moves when anything comes
   * back. Any thread.
   */
  public void probe() {
    execute(
        () -> {
          if (established && ctx != null && ctx.channel().isActive()) {
            ctx.writeAndFlush(new PingWebSocketFrame());
          }
        });
  }

  /** Streams dialling or open. Only meaningful on the event loop. */
  public int streamCount() {
    return streams.size();
  }

  public int pendingDials() {
    return pendingDials;
  }

  /**
   * Streams this session has carried so far (server side: dials sent; agent side: dials admitted).
   * Any thread.
   */
  public long streamsOpened() {
    return streamsOpened;
  }

  /**
   * What the session is doing, taken on its event loop; any thread may ask. Completes with null if
   * the session is gone before its loop can answer.
   */
  public CompletableFuture<SessionStatus> status() {
    CompletableFuture<SessionStatus> answer = new CompletableFuture<>();
    channel()
        .eventLoop()
        .submit(
            () -> {
              long now = System.nanoTime();
              long toPeer = closedBytesToPeer;
              long fromPeer = closedBytesFromPeer;
              List<SessionStatus.Stream> list = new ArrayList<>(streams.size());
              for (TunnelStream s : streams.values()) {
                toPeer += s.bytesToPeer();
                fromPeer += s.bytesFromPeer();
                list.add(
                    new SessionStatus.Stream(
                        s.id(),
                        s.target(),
                        s.state().name().toLowerCase(java.util.Locale.ROOT),
                        (now - s.createdNanos()) / 1_000_000,
                        s.bytesToPeer(),
                        s.bytesFromPeer(),
                        s.protocol()));
              }
              AgentHello hello = role == Role.SERVER ? agentHello : ownHello;
              return new SessionStatus(
                  hello == null ? null : hello.nodeName(),
                  Addresses.text(channel().remoteAddress()),
                  role == Role.SERVER
                      ? serverId
                      : (serverHello == null ? null : serverHello.serverId()),
                  connectedAtMillis,
                  (now - lastHeardNanos) / 1_000_000,
                  isDraining(),
                  toPeer,
                  fromPeer,
                  streamsOpened,
                  list);
            })
        .addListener(f -> answer.complete(f.isSuccess() ? (SessionStatus) f.getNow() : null));
    return answer;
  }

  /** A snapshot of the streams, for status pages. Call on the event loop. */
  public List<TunnelStream> streams() {
    return new ArrayList<>(streams.values());
  }

  int peerInitialWindow() {
    return peerInitialWindow;
  }

  int peerMaxFramePayload() {
    return peerMaxFramePayload;
  }

  boolean isWritable() {
    return ctx.channel().isWritable();
  }

  // ---- opening streams (server) --------------------------------------------------------------

  /**
   * Server: opens a stream to {@code host:port} through this agent, spliced to {@code client}. The
   * future succeeds once the agent has connected the target, or fails with a {@link
   * DialFailedException}.
   */
  public Future<TunnelStream> openStream(
      String host, int port, int dialTimeoutMillis, long answerTimeoutMillis, Channel client) {
    Promise<TunnelStream> promise = eventLoop().newPromise();
    boolean queued =
        execute(
            () -> {
              DialFailedException refusal = admissionRefusal();
              if (refusal != null) {
                promise.tryFailure(refusal);
                return;
              }
              int id = ++lastStreamId;
              streamsOpened++;
              TunnelStream stream = new TunnelStream(this, id, hostPort(host, port));
              streams.put(id, stream);
              pendingDials++;
              metrics.dialStarted();
              stream.awaitDialResult(client, promise, answerTimeoutMillis);
              writeAndFlush(new Dial(id, dialTimeoutMillis, host, port));
            });
    if (!queued) {
      promise.tryFailure(DialFailedException.sessionLost("the agent's session is shutting down"));
    }
    return promise;
  }

  private DialFailedException admissionRefusal() {
    if (role != Role.SERVER) {
      throw new IllegalStateException("only the server opens streams");
    }
    if (!isEstablished() || !ctx.channel().isActive()) {
      return DialFailedException.sessionLost("the agent's session is closed");
    }
    if (isDraining()) {
      return new DialFailedException(DialStatus.DRAINING, "the agent's session is draining");
    }
    if (lastStreamId == Limits.MAX_STREAM_ID) {
      goAway(ErrorCode.NO_ERROR, "stream ids exhausted; reconnect");
      return new DialFailedException(DialStatus.DRAINING, "the session's stream ids ran out");
    }
    if (streams.size() >= config.maxStreams()) {
      return new DialFailedException(
          DialStatus.TOO_MANY_STREAMS,
          "the agent already carries "
              + streams.size()
              + " streams (limit "
              + config.maxStreams()
              + ")");
    }
    if (pendingDials >= config.maxPendingDials()) {
      return new DialFailedException(
          DialStatus.TOO_MANY_STREAMS,
          "pending dial limit reached: "
              + pendingDials
              + " dials to this agent are waiting (limit "
              + config.maxPendingDials()
              + ")");
    }
    return null;
  }

  // ---- draining ------------------------------------------------------------------------------

  /**
   * Announces that this side starts no new streams (server) or accepts none (agent). Existing
   * streams go on; the session closes when the last one ends.
   */
  public void goAway(ErrorCode code, String message) {
    execute(
        () -> {
          if (goAwaySent || closing) {
            return;
          }
          goAwaySent = true;
          writeAndFlush(new GoAway(code, lastStreamId, message));
          closeIfDrained();
        });
  }

  private void closeIfDrained() {
    if (goAwaySent && streams.isEmpty() && !closing) {
      closing = true;
      ctx.writeAndFlush(new CloseWebSocketFrame(WebSocketCloseStatus.NORMAL_CLOSURE, "drained"))
          .addListener(ChannelFutureListener.CLOSE);
    }
  }

  // ---- pipeline events -----------------------------------------------------------------------

  @Override
  public void handlerAdded(ChannelHandlerContext ctx) {
    this.ctx = ctx;
    handshakeTimer =
        ctx.executor()
            .schedule(
                () -> {
                  if (!established) {
                    closeWithError(
                        ErrorCode.PROTOCOL_ERROR,
                        "no hello within " + config.handshakeTimeoutMillis() + " ms");
                  }
                },
                config.handshakeTimeoutMillis(),
                TimeUnit.MILLISECONDS);
    if (role == Role.AGENT && ctx.channel().isActive()) {
      writeAndFlush(ownHello);
    }
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (!(msg instanceof Frame frame)) {
      ReferenceCountUtil.release(msg); // pong and other websocket control frames
      return;
    }
    metrics.frameReceived(frame.type());
    if (closing) {
      ReferenceCountUtil.release(msg);
      return;
    }
    if (!established) {
      onHandshakeFrame(frame);
      return;
    }
    switch (frame.type()) {
      case DATA -> {
        TunnelStream s = streamFor(frame);
        if (s != null) {
          s.onData((DataFrame) frame);
        } else {
          ((DataFrame) frame).release();
        }
      }
      case WINDOW_UPDATE -> {
        TunnelStream s = streamFor(frame);
        if (s != null) {
          s.onWindowUpdate((WindowUpdate) frame);
        }
      }
      case FIN -> {
        TunnelStream s = streamFor(frame);
        if (s != null) {
          s.onFin();
        }
      }
      case RESET -> {
        TunnelStream s = streamFor(frame);
        if (s != null) {
          s.onReset((Reset) frame);
        }
      }
      case DIAL -> onDial((Dial) frame);
      case DIAL_RESULT -> {
        if (role != Role.SERVER) {
          closeWithError(ErrorCode.PROTOCOL_ERROR, "an agent never receives DIAL_RESULT");
          return;
        }
        TunnelStream s = streamFor(frame);
        if (s != null) {
          s.onDialResult((DialResult) frame);
        }
      }
      case GO_AWAY -> onGoAway((GoAway) frame);
      case AGENT_HELLO, SERVER_HELLO ->
          closeWithError(ErrorCode.PROTOCOL_ERROR, "a second hello: " + frame.type());
    }
  }

  void spliceTap(SpliceTap tap) {
    this.spliceTap = tap;
  }

  /**
   * From now on the frames this side sends go unmasked: an agent's once masking is off (the
   * server's never are), which lets its streams splice what they send.
   */
  public void sendsUnmasked() {
    unmaskedSends = true;
  }

  /**
   * Whether streams may splice what they send: a tap is in place (a plaintext websocket on epoll),
   * frames go unmasked, and the session's staging pipe is open.
   */
  boolean splicesSends() {
    if (spliceTap == null || !unmaskedSends || !established || closing) {
      return false;
    }
    // With no pipe to spare, streams send by copying until one can be had.
    return sendStaging != null || (sendStaging = SplicePipe.openOrNull()) != null;
  }

  /**
   * Writes a DATA frame for {@code streamId} whose {@code n} payload bytes wait in {@code payload},
   * below the websocket encoder (it is a whole websocket message already); flushed.
   */
  io.netty.channel.ChannelFuture writeSpliced(int streamId, SplicePipe payload, int n) {
    io.netty.buffer.ByteBuf header = ctx.alloc().directBuffer(SpliceTap.MAX_HEADERS);
    WebSocketHeader.write(header, WebSocketHeader.FINAL_BINARY, false, Limits.HEADER_SIZE + n);
    FrameCodec.writeHeader(header, FrameType.DATA, streamId, n);
    metrics.frameSent(FrameType.DATA);
    return spliceTap.write(payload.framed(header, n, sendStaging, ctx.channel()));
  }

  /**
   * The stream whose DATA frame of {@code n} payload bytes the {@link SpliceTap} found, if the
   * frame may go to its socket by splicing; null if the frame must take the usual path, which then
   * checks and reports whatever is wrong with it. A frame taken counts as received here.
   */
  TunnelStream spliceTarget(int streamId, int n) {
    if (!established || closing) {
      return null;
    }
    if (n > config.maxFramePayload()) {
      return null; // the decoder reports it: FRAME_TOO_LARGE ends the session
    }
    TunnelStream s = streams.get(streamId);
    if (s == null || !s.canSplice(n)) {
      return null;
    }
    metrics.frameReceived(FrameType.DATA);
    return s;
  }

  /** The stream a frame belongs to; null if it is already closed or if the session just failed. */
  private TunnelStream streamFor(Frame frame) {
    int id = frame.streamId();
    TunnelStream s = streams.get(id);
    if (s == null && id > lastStreamId) {
      closeWithError(
          ErrorCode.PROTOCOL_ERROR,
          frame.type() + " for stream " + id + ", which was never opened");
    }
    return s; // null and id <= last: a closed stream; its late frames are ignored
  }

  private void onHandshakeFrame(Frame frame) {
    if (role == Role.SERVER && frame instanceof AgentHello hello) {
      int version = Math.min(hello.maxVersion(), Limits.MAX_VERSION);
      if (version < Math.max(hello.minVersion(), Limits.MIN_VERSION)) {
        closeWithError(
            ErrorCode.UNSUPPORTED_VERSION,
            "server speaks versions "
                + Limits.MIN_VERSION
                + ".."
                + Limits.MAX_VERSION
                + "; agent offered "
                + hello.minVersion()
                + ".."
                + hello.maxVersion());
        return;
      }
      String refusal = listener.refuse(this, hello);
      if (refusal != null) {
        closeWithError(ErrorCode.PROTOCOL_ERROR, refusal);
        return;
      }
      agentHello = hello;
      peerInitialWindow = hello.initialWindow();
      peerMaxFramePayload = hello.maxFramePayload();
      writeAndFlush(
          new ServerHello(
              version,
              hello.capabilities() & AgentHello.SERVER_ACCEPTS,
              config.initialWindow(),
              config.maxFramePayload(),
              config.maxStreams(),
              serverCount,
              serverId));
      establish();
    } else if (role == Role.AGENT && frame instanceof ServerHello hello) {
      if (hello.version() < ownHello.minVersion() || hello.version() > ownHello.maxVersion()) {
        closeWithError(
            ErrorCode.UNSUPPORTED_VERSION,
            "server chose version " + hello.version() + ", outside the offered range");
        return;
      }
      serverHello = hello;
      peerInitialWindow = hello.initialWindow();
      peerMaxFramePayload = hello.maxFramePayload();
      establish();
    } else if (role == Role.AGENT && frame instanceof GoAway goAway) {
      log.warn("server refused the session: {} {}", goAway.code(), goAway.message());
      goAwayReceived = goAway;
      listener.onGoAway(this, goAway);
      ctx.close();
    } else {
      ReferenceCountUtil.release(frame);
      closeWithError(
          ErrorCode.PROTOCOL_ERROR, frame.type() + " before the hello exchange completed");
    }
  }

  private void establish() {
    established = true;
    connectedAtMillis = System.currentTimeMillis();
    if (handshakeTimer != null) {
      handshakeTimer.cancel(false);
    }
    listener.onEstablished(this);
  }

  private void onDial(Dial dial) {
    if (role != Role.AGENT) {
      closeWithError(ErrorCode.PROTOCOL_ERROR, "only the server opens streams");
      return;
    }
    if (dial.streamId() <= lastStreamId) {
      closeWithError(
          ErrorCode.PROTOCOL_ERROR,
          "DIAL for stream " + dial.streamId() + ", not above the last id " + lastStreamId);
      return;
    }
    lastStreamId = dial.streamId();
    String target = hostPort(dial.host(), dial.port());
    if (goAwaySent) {
      writeAndFlush(new DialResult(dial.streamId(), DialStatus.DRAINING, "the agent is draining"));
      metrics.dialAnswered(DialStatus.DRAINING, 0);
      return;
    }
    if (streams.size() >= config.maxStreams() || pendingDials >= config.maxPendingDials()) {
      writeAndFlush(
          new DialResult(
              dial.streamId(),
              DialStatus.TOO_MANY_STREAMS,
              "the agent carries "
                  + streams.size()
                  + " streams and "
                  + pendingDials
                  + " pending dials (limits "
                  + config.maxStreams()
                  + ", "
                  + config.maxPendingDials()
                  + ")"));
      metrics.dialAnswered(DialStatus.TOO_MANY_STREAMS, 0);
      return;
    }
    TunnelStream stream = new TunnelStream(this, dial.streamId(), target);
    streams.put(dial.streamId(), stream);
    streamsOpened++;
    pendingDials++;
    metrics.dialStarted();
    listener.onDial(stream, dial);
  }

  private void onGoAway(GoAway goAway) {
    goAwayReceived = goAway;
    listener.onGoAway(this, goAway);
    if (goAway.code() != ErrorCode.NO_ERROR) {
      if (goAway.code() == ErrorCode.DUPLICATE_SERVER_ID) {
        log.debug("peer closed the session: {} {}", goAway.code(), goAway.message()); // listener
      } else {
        log.warn("peer closed the session: {} {}", goAway.code(), goAway.message());
      }
      ctx.close();
    }
  }

  @Override
  public void channelReadComplete(ChannelHandlerContext ctx) {
    lastHeardNanos = System.nanoTime(); // once per read, not per frame
    for (int i = 0; i < toDeliver.size(); i++) {
      toDeliver.get(i).deliverToLocal();
    }
    toDeliver.clear();
    ctx.fireChannelReadComplete();
  }

  @Override
  public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
    if (role == Role.SERVER && evt instanceof WebSocketServerProtocolHandler.HandshakeComplete) {
      // The 101 is out and the agent sends nothing before it has it: no frame has arrived yet.
      SpliceTap.installIfPossible(ctx.pipeline(), this);
    }
    if (evt instanceof IdleStateEvent idle) {
      switch (idle.state()) {
        case READER_IDLE -> {
          log.warn("{}: nothing received within the ping timeout; closing", describe());
          ctx.close();
        }
        case WRITER_IDLE, ALL_IDLE -> {
          // Before the hellos the websocket may not be up yet; the handshake timer guards that.
          if (established) {
            ctx.writeAndFlush(new PingWebSocketFrame());
          }
        }
      }
      return;
    }
    ctx.fireUserEventTriggered(evt);
  }

  @Override
  public void channelWritabilityChanged(ChannelHandlerContext ctx) {
    if (ctx.channel().isWritable()) {
      for (TunnelStream s : streams.values()) {
        s.maybeReadLocal();
      }
    }
    ctx.fireChannelWritabilityChanged();
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    if (cause instanceof ProtocolException pe) {
      if (!pe.isStreamError()) {
        closeWithError(ErrorCode.PROTOCOL_ERROR, pe.getMessage());
        return;
      }
      int id = pe.streamId();
      TunnelStream s = streams.get(id);
      if (s != null) {
        s.protocolError(pe.getMessage());
      } else if (id > lastStreamId) {
        if (role == Role.AGENT) {
          // A malformed DIAL: the stream never opens here; the server's dial fails.
          lastStreamId = id;
          writeAndFlush(new Reset(id, ErrorCode.PROTOCOL_ERROR, pe.getMessage()));
        } else {
          closeWithError(ErrorCode.PROTOCOL_ERROR, pe.getMessage());
        }
      }
      return;
    }
    if (!closing) {
      log.debug("{}: closing after error", describe(), cause);
    }
    ctx.close();
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    closing = true;
    ReferenceCountUtil.release(sendStaging); // regions not written yet hold it till they go
    sendStaging = null;
    if (handshakeTimer != null) {
      handshakeTimer.cancel(false);
    }
    for (TunnelStream s : new ArrayList<>(streams.values())) {
      s.onSessionClosed("the agent's session closed");
    }
    listener.onClosed(this);
    ctx.fireChannelInactive();
  }

  /**
   * Ends the session at once, from any thread: every stream ends as if the session were lost (its
   * socket reset, its pending dial failed), then the channel closes. The future completes once that
   * has run on the session's event loop, so a caller that shuts the loops down next does not let
   * them close the streams' sockets plainly first.
   */
  public io.netty.util.concurrent.Future<?> abort(String why) {
    return eventLoop()
        .submit(
            () -> {
              for (TunnelStream s : new ArrayList<>(streams.values())) {
                s.onSessionClosed(why);
              }
              channel().close();
            });
  }

  /**
   * Protocol errors by code and kind, logged once per 10 s each: a peer sending garbage over and
   * over (or a scanner) cannot flood the log.
   */
  private static final io.egresstunnel.proto.config.RateLimitedLog protocolErrors =
      new io.egresstunnel.proto.config.RateLimitedLog(log, java.time.Duration.ofSeconds(10));

  /** Closes the session for a protocol error: GO_AWAY, websocket close 1002, then the socket. */
  void closeWithError(ErrorCode code, String message) {
    if (closing) {
      return;
    }
    closing = true;
    String kind = message.indexOf(':') > 0 ? message.substring(0, message.indexOf(':')) : message;
    protocolErrors.warn(code + " " + kind, "{}: closing session: {} {}", describe(), code, message);
    ctx.write(new GoAway(code, lastStreamId, message));
    metrics.frameSent(FrameType.GO_AWAY);
    ctx.writeAndFlush(
            new CloseWebSocketFrame(WebSocketCloseStatus.PROTOCOL_ERROR, truncate(message, 120)))
        .addListener(ChannelFutureListener.CLOSE);
  }

  // ---- used by streams -----------------------------------------------------------------------

  void streamClosed(TunnelStream stream) {
    if (streams.remove(stream.id()) != null) {
      closedBytesToPeer += stream.bytesToPeer();
      closedBytesFromPeer += stream.bytesFromPeer();
      listener.onStreamClosed(stream);
    }
    closeIfDrained();
  }

  /** The stream got DATA in this read batch; it is written out when the batch ends. */
  void deliverAtReadComplete(TunnelStream stream) {
    toDeliver.add(stream);
  }

  void dialSettled() {
    pendingDials--;
    metrics.dialSettled();
  }

  SessionMetrics metrics() {
    return metrics;
  }

  void write(Frame frame) {
    metrics.frameSent(frame.type());
    ctx.write(frame, ctx.voidPromise());
  }

  void flush() {
    ctx.flush();
  }

  void writeAndFlush(Frame frame) {
    metrics.frameSent(frame.type());
    ctx.writeAndFlush(frame, ctx.voidPromise());
  }

  /** Runs {@code task} on the session's event loop; false if the loop no longer takes tasks. */
  boolean execute(Runnable task) {
    EventLoop loop = eventLoop();
    if (loop.inEventLoop()) {
      task.run();
      return true;
    }
    try {
      loop.execute(task);
      return true;
    } catch (RejectedExecutionException e) {
      return false;
    }
  }

  /** A short description for logs: the node and the remote address. */
  public String describe() {
    AgentHello hello = agentHello();
    String node = hello == null ? "?" : hello.nodeName();
    return "session[" + role.name().toLowerCase() + " node=" + node + " " + remote() + "]";
  }

  private String remote() {
    return ctx == null ? "" : Addresses.text(ctx.channel().remoteAddress());
  }

  static String hostPort(String host, int port) {
    return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
  }

  private static String truncate(String s, int max) {
    return s.length() <= max ? s : s.substring(0, max);
  }

  @Override
  public String toString() {
    return describe();
  }
}

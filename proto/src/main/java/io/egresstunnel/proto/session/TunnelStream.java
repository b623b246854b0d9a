package io.egresstunnel.proto.session;

import io.egresstunnel.proto.DataFrame;
import io.egresstunnel.proto.DialResult;
import io.egresstunnel.proto.DialStatus;
import io.egresstunnel.proto.ErrorCode;
import io.egresstunnel.proto.Fin;
import io.egresstunnel.proto.Reset;
import io.egresstunnel.proto.WindowUpdate;
import io.egresstunnel.proto.net.HalfClose;
import io.egresstunnel.proto.net.SplicePipe;
import io.egresstunnel.proto.net.Transport;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.Promise;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.ArrayDeque;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One stream of a {@link TunnelSession}, spliced to a local socket: the client's CONNECT socket on
 * the server, the target socket on the agent. docs/protocol.md, "Streams", is the state machine
 * this class implements.
 *
 * <p>All state lives on the session's event loop. Events from the local socket, which may run on
 * another loop, hop there first. The local socket runs with AUTO_READ off and is read once at a
 * time, only while the stream has send credit and the websocket is writable. Received DATA is
 * written to the socket and credit is returned as those writes complete, so a stalled reader holds
 * at most one window of this stream's bytes and nothing else.
 */
public final class TunnelStream {
  private static final Logger log = LoggerFactory.getLogger(TunnelStream.class);

  /** Where a stream is in its life (docs/protocol.md, "States"). */
  public enum State {
    DIALLING,
    OPEN,
    HALF_CLOSED_LOCAL,
    HALF_CLOSED_REMOTE,
    CLOSED
  }

  /**
   * Set on a stream's local channel by the frontend that serves it ({@code connect}, {@code grpc}),
   * for status pages.
   */
  public static final io.netty.util.AttributeKey<String> PROTOCOL =
      io.netty.util.AttributeKey.valueOf(TunnelStream.class, "protocol");

  private final TunnelSession session;
  private final int id;
  private final String target;
  private final long createdNanos = System.nanoTime();
  private State state = State.DIALLING;

  private Channel local;
  private Promise<TunnelStream> openPromise;
  private ScheduledFuture<?> dialTimer;

  private int sendWindow;
  private int receiveWindow;
  private int consumedNotGranted;
  private int bufferedToLocal;
  private ByteBuf pendingOut;
  // What arrived for the local socket in this read batch, in order: ByteBufs and pipe regions.
  private final ArrayDeque<Object> toLocal = new ArrayDeque<>(4);
  private SplicePipe pipe; // opened at the first spliced payload received
  private SplicePipe sendPipe; // opened at the first spliced send
  private boolean splicedSendInFlight;
  private boolean splicingSends;
  private int toLocalBytes;
  private boolean localReadPending;
  private boolean localEof;
  private boolean localBatchQueued;
  private Boolean localIsTls; // known at the first bytes from the local socket

  private long bytesToPeer;
  private long bytesFromPeer;
  private boolean finishedBothWays;
  private boolean creditStalled;
  private long creditStalledSinceNanos;

  TunnelStream(TunnelSession session, int id, String target) {
    this.session = session;
    this.id = id;
    this.target = target;
    this.receiveWindow = session.localConfig().initialWindow();
  }

  public int id() {
    return id;
  }

  /** {@code host:port} of the target, for logs and status. */
  public String target() {
    return target;
  }

  public State state() {
    return state;
  }

  public TunnelSession session() {
    return session;
  }

  /** Bytes of this stream written to the local socket whose writes have not completed yet. */
  public int bufferedToLocal() {
    return bufferedToLocal;
  }

  /** The protocol of the client this stream serves ({@link #PROTOCOL}), or null. */
  public String protocol() {
    return local == null ? null : local.attr(PROTOCOL).get();
  }

  /** Bytes read from the local socket and held because the stream has no credit. */
  public int heldForPeer() {
    return pendingOut == null ? 0 : pendingOut.readableBytes();
  }

  public int sendWindow() {
    return sendWindow;
  }

  public long bytesToPeer() {
    return bytesToPeer;
  }

  /** When the stream was created, in {@link System#nanoTime()} terms. */
  public long createdNanos() {
    return createdNanos;
  }

  public long bytesFromPeer() {
    return bytesFromPeer;
  }

  public long ageNanos() {
    return System.nanoTime() - createdNanos;
  }

  // ---- opening -------------------------------------------------------------------------------

  /** Server side: the stream waits for its DIAL_RESULT; {@code promise} completes with it. */
  void awaitDialResult(Channel client, Promise<TunnelStream> promise, long timeoutMillis) {
    this.local = client;
    this.openPromise = promise;
    this.dialTimer =
        session
            .eventLoop()
            .schedule(
                () ->
                    failDial(
                        ErrorCode.CANCEL,
                        new DialFailedException(
                            DialStatus.TIMEOUT,
                            "the agent did not answer the dial within " + timeoutMillis + " ms")),
                timeoutMillis,
                TimeUnit.MILLISECONDS);
    client
        .closeFuture()
        .addListener(f -> session.execute(() -> onLocalClosed("the client closed its connection")));
    // A caller that gives the dial up (it moves to another session) cancels the promise.
    promise.addListener(
        f -> {
          if (f.isCancelled()) {
            resetWith(ErrorCode.CANCEL, "the dial was given up");
          }
        });
  }

  void onDialResult(DialResult result) {
    if (state != State.DIALLING || openPromise == null) {
      resetWith(ErrorCode.PROTOCOL_ERROR, "DIAL_RESULT on a stream that is " + state);
      return;
    }
    if (result.status() != DialStatus.OK) {
      String why = result.message().isEmpty() ? result.status().toString() : result.message();
      terminate(new DialFailedException(result.status(), why));
      return;
    }
    cancelDialTimer();
    state = State.OPEN;
    session.dialSettled();
    session.metrics().streamOpened();
    sendWindow = session.peerInitialWindow();
    openPromise.trySuccess(this);
  }

  /**
   * Server side, once the client socket is ready to relay: installs the relay handler and starts
   * reading. Call after the CONNECT's 200 has been written, from any thread.
   */
  public void startRelay() {
    session.execute(
        () -> {
          if (state == State.CLOSED) {
            return;
          }
          maybeReadLocal();
        });
  }

  /** A handler for the local socket's pipeline that feeds this stream. */
  public ChannelHandler newRelayHandler() {
    return new LocalRelayHandler();
  }

  /** Agent side: the target is connected. Installs the relay and reports OK to the server. */
  public void dialSucceeded(Channel target) {
    session.execute(
        () -> {
          if (state != State.DIALLING) {
            target.close(); // reset by the server while dialling
            return;
          }
          local = target;
          target.pipeline().addLast("stream-relay", new LocalRelayHandler());
          target
              .closeFuture()
              .addListener(f -> session.execute(() -> onLocalClosed("target closed")));
          state = State.OPEN;
          session.dialSettled();
          session.metrics().streamOpened();
          sendWindow = session.peerInitialWindow();
          session.writeAndFlush(new DialResult(id, DialStatus.OK, ""));
          session.metrics().dialAnswered(DialStatus.OK, System.nanoTime() - createdNanos);
          maybeReadLocal();
        });
  }

  /** Agent side: the dial failed or was refused; reports it and forgets the stream. */
  public void dialFailed(DialStatus status, String message) {
    session.execute(
        () -> {
          if (state != State.DIALLING) {
            return;
          }
          session.writeAndFlush(new DialResult(id, status, message));
          session.metrics().dialAnswered(status, System.nanoTime() - createdNanos);
          terminate(null);
        });
  }

  // ---- frames from the peer ------------------------------------------------------------------

  void onData(DataFrame frame) {
    ByteBuf payload = frame.content();
    int n = payload.readableBytes();
    if (!open()) {
      frame.release();
      resetWith(ErrorCode.PROTOCOL_ERROR, "DATA on a stream that is " + state);
      return;
    }
    if (n > receiveWindow) {
      frame.release();
      resetWith(
          ErrorCode.FLOW_CONTROL_ERROR,
          "DATA of " + n + " bytes exceeds the remaining window of " + receiveWindow);
      return;
    }
    if (n == 0) {
      frame.release();
      return;
    }
    accept(payload, n);
  }

  /** Queues {@code n} payload bytes ({@code item}: a ByteBuf or a pipe region) for the socket. */
  private void accept(Object item, int n) {
    receiveWindow -= n;
    bufferedToLocal += n;
    bytesFromPeer += n;
    session.metrics().dataReceived(n);
    if (toLocal.isEmpty()) {
      session.deliverAtReadComplete(this);
    }
    toLocal.add(item);
    toLocalBytes += n;
  }

  // ---- spliced DATA (SpliceTap): the payload goes from the websocket to the socket in the kernel

  /**
   * Whether a DATA payload of {@code n} bytes may be spliced into this stream's socket: the frame
   * is one {@link #onData} would accept, and the socket is one {@link SplicePipe#canDrainInto}
   * allows.
   */
  boolean canSplice(int n) {
    return open()
        && n <= receiveWindow
        && local != null
        && SplicePipe.canDrainInto(session.channel(), local)
        && (pipe != null || (pipe = SplicePipe.openOrNull()) != null);
  }

  /**
   * Whether the stream takes DATA: it is open, or only its own side has ended. The tap asks it
   * again for the rest of a payload it accepted with {@link #canSplice}.
   */
  boolean open() {
    return state == State.OPEN || state == State.HALF_CLOSED_LOCAL;
  }

  /** The part of a spliced payload that a read brought with its header: taken as bytes. */
  void onDataPart(ByteBuf part) {
    if (!open()) {
      part.release(); // the stream ended within the frame: the rest of it is dropped
      return;
    }
    accept(part, part.readableBytes());
  }

  /**
   * Splices up to {@code len} bytes of a payload from the websocket's socket into this stream's
   * pipe and writes them to the socket at once, so that the pipe drains while the frame goes on.
   *
   * @return the bytes moved; 0 if the socket has none now or the pipe is full ({@link #pipeHeld}
   *     tells which)
   */
  int spliceFrom(int websocketFd, int len) throws java.io.IOException {
    int n = pipe.fill(websocketFd, len);
    if (n > 0) {
      accept(pipe.region(n, local), n);
      session.metrics().dataSplicedIn(n);
      deliverToLocal();
    }
    return n;
  }

  /** Bytes spliced into this stream's pipe and not yet into its socket. */
  long pipeHeld() {
    return pipe == null ? 0 : pipe.held();
  }

  /**
   * Writes what this read batch brought for the stream to its socket: one task, one flush and one
   * completion listener per batch. Writes complete in order, so the last one's completion means the
   * whole batch left the process, and its credit is returned then.
   */
  void deliverToLocal() {
    if (toLocal.isEmpty()) {
      return;
    }
    Object[] batch = toLocal.toArray();
    toLocal.clear();
    int n = toLocalBytes;
    toLocalBytes = 0;
    Channel ch = local;
    Runnable write =
        () -> {
          for (int i = 0; i < batch.length - 1; i++) {
            ch.write(batch[i], ch.voidPromise());
          }
          ch.writeAndFlush(batch[batch.length - 1])
              .addListener(f -> session.execute(() -> onLocalWriteDone(n, f.isSuccess())));
        };
    if (ch.eventLoop().inEventLoop()) {
      write.run();
    } else {
      ch.eventLoop().execute(write);
    }
  }

  private void onLocalWriteDone(int n, boolean success) {
    bufferedToLocal -= n;
    if (state == State.CLOSED) {
      return;
    }
    if (!success) {
      resetWith(ErrorCode.CONNECTION_ERROR, "writing to the local socket failed");
      return;
    }
    consumedNotGranted += n;
    // Grant in batches, once half the window is consumed. The sender uses the whole window, so
    // consumption always reaches half of it: this cannot deadlock.
    if (consumedNotGranted >= session.localConfig().initialWindow() / 2) {
      receiveWindow += consumedNotGranted;
      session.writeAndFlush(new WindowUpdate(id, consumedNotGranted));
      consumedNotGranted = 0;
    }
  }

  void onWindowUpdate(WindowUpdate update) {
    if (state == State.DIALLING) {
      resetWith(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE before the dial result");
      return;
    }
    long next = (long) sendWindow + update.increment();
    if (next > Integer.MAX_VALUE) {
      resetWith(ErrorCode.FLOW_CONTROL_ERROR, "window update overflows the send window");
      return;
    }
    sendWindow = (int) next;
    if (sendWindow > 0) {
      endCreditStall();
    }
    sendPending();
    maybeReadLocal();
  }

  void onFin() {
    log.debug("stream {} to {}: FIN received after {} bytes", id, target, bytesFromPeer);
    switch (state) {
      case OPEN -> {
        state = State.HALF_CLOSED_REMOTE;
        shutdownLocalOutput();
        if (!HalfClose.canHalfClose(local)) {
          onLocalEof(); // the local end cannot go on one way: end ours too, after what is held
          return;
        }
        maybeReadLocal();
      }
      case HALF_CLOSED_LOCAL -> {
        // Both ways are done: the graceful close writes what is held, then closes the socket,
        // which ends its output as a shutdown would. No shutdown first: it costs a syscall, and
        // Netty builds an exception with a stack trace for each one.
        finishedBothWays = true;
        terminate(null);
      }
      default -> resetWith(ErrorCode.PROTOCOL_ERROR, "FIN on a stream that is " + state);
    }
  }

  void onReset(Reset reset) {
    if (log.isDebugEnabled()) {
      log.debug("stream {} to {} reset by peer: {} {}", id, target, reset.code(), reset.message());
    }
    DialFailedException failure =
        state == State.DIALLING
            ? new DialFailedException(
                DialStatus.INTERNAL_ERROR, "the agent reset the stream: " + reset.message())
            : null;
    terminate(failure);
  }

  /** A frame for this stream broke the protocol: reset it, the session goes on. */
  void protocolError(String why) {
    resetWith(ErrorCode.PROTOCOL_ERROR, why);
  }

  /** The session is gone: every stream ends at once, pending dials fail. */
  void onSessionClosed(String why) {
    terminate(DialFailedException.sessionLost(why));
  }

  /** Cancels the stream from this side (client gone, shutdown): RESET(CANCEL) to the peer. */
  public void cancel(String why) {
    session.execute(() -> resetWith(ErrorCode.CANCEL, why));
  }

  // ---- the local socket ----------------------------------------------------------------------

  private void onLocalData(ByteBuf buf) {
    localReadPending = false;
    if (state == State.CLOSED || localEof || !canSend()) {
      buf.release();
      return;
    }
    bytesToPeer += buf.readableBytes();
    // One read() usually yields one buffer, but a socket whose peer closed (RDHUP) is drained
    // whole, so buffers may arrive while some are still held: keep them in order.
    if (pendingOut == null) {
      pendingOut = buf;
    } else if (pendingOut instanceof CompositeByteBuf held) {
      held.addComponent(true, buf);
    } else {
      pendingOut = buf.alloc().compositeBuffer().addComponents(true, pendingOut, buf);
    }
    if (localIsTls()) {
      // TLS hands over one record (at most 16 KiB) at a time, several per read of the socket:
      // what one read brings goes out together, in frames as large as the credit allows, once
      // the loop has handed all of it over. A frame per record cost as much again per byte.
      if (!localBatchQueued) {
        localBatchQueued = true;
        try {
          session.eventLoop().execute(this::sendLocalBatch);
        } catch (RejectedExecutionException e) {
          localBatchQueued = false; // the session is closing; its end releases what is held
        }
      }
      return;
    }
    sendPending();
    maybeReadLocal();
  }

  /** Whether the local socket speaks TLS (its pipeline does not change once the stream has it). */
  private boolean localIsTls() {
    if (localIsTls == null) {
      localIsTls = local != null && local.pipeline().get(SslHandler.class) != null;
    }
    return localIsTls;
  }

  /** Sends what the local socket's last read brought, then reads on. */
  private void sendLocalBatch() {
    localBatchQueued = false;
    sendPending();
    maybeReadLocal();
  }

  private void onLocalEof() {
    localReadPending = false;
    if (state == State.CLOSED || localEof) {
      return;
    }
    localEof = true;
    if (pendingOut == null) {
      sendFin();
    }
  }

  private void onLocalClosed(String why) {
    if (state == State.CLOSED) {
      return;
    }
    if (state == State.DIALLING) {
      failDial(ErrorCode.CANCEL, new DialFailedException(DialStatus.INTERNAL_ERROR, why));
      return;
    }
    resetWith(ErrorCode.CANCEL, why);
  }

  private void onLocalError(Throwable cause) {
    if (state != State.CLOSED) {
      log.debug("stream {} to {}: local socket failed", id, target, cause);
      resetWith(ErrorCode.CONNECTION_ERROR, "local socket failed: " + cause.getMessage());
    }
  }

  private boolean canSend() {
    return state == State.OPEN || state == State.HALF_CLOSED_REMOTE;
  }

  /** Sends what is held, as far as the credit reaches, in frames the peer accepts. */
  private void sendPending() {
    if (pendingOut == null || !canSend()) {
      return;
    }
    int maxFrame = session.peerMaxFramePayload();
    boolean wrote = false;
    while (pendingOut != null && sendWindow > 0) {
      int readable = pendingOut.readableBytes();
      int n = Math.min(readable, Math.min(sendWindow, maxFrame));
      ByteBuf chunk;
      if (n == readable) {
        chunk = pendingOut;
        pendingOut = null;
      } else {
        chunk = pendingOut.readRetainedSlice(n);
      }
      sendWindow -= n;
      session.metrics().dataSent(n);
      session.write(new DataFrame(id, chunk));
      wrote = true;
    }
    if (wrote) {
      session.flush();
      if (sendWindow == 0) {
        startCreditStall();
      }
    }
    if (pendingOut == null && localEof) {
      sendFin();
    }
  }

  private void sendFin() {
    if (!canSend()) {
      return;
    }
    log.debug("stream {} to {}: FIN sent after {} bytes", id, target, bytesToPeer);
    session.writeAndFlush(new Fin(id));
    if (state == State.OPEN) {
      state = State.HALF_CLOSED_LOCAL;
    } else {
      finishedBothWays = true;
      terminate(null);
    }
  }

  /** Reads the local socket once more, if the stream may send and the websocket can take it. */
  void maybeReadLocal() {
    if (local != null
        && !localReadPending
        && !localEof
        && pendingOut == null
        && sendWindow > 0
        && canSend()
        && session.isWritable()) {
      if (spliceSends()) {
        return;
      }
      localReadPending = true;
      Channel ch = local;
      if (ch.eventLoop().inEventLoop()) {
        Transport.readUnlessShut(ch);
      } else {
        ch.eventLoop().execute(() -> Transport.readUnlessShut(ch));
      }
    }
  }

  /**
   * Sends what the local socket holds by splicing it into this stream's send pipe and from there,
   * behind its headers, into the websocket: one frame at a time per stream, each of at most the
   * credit, the peer's frame limit and the pipe's size less {@link #SPLICED_HEADER_ROOM}.
   *
   * @return true if it sent, or a sent frame is still going out (its completion, a window update or
   *     the websocket's writability calls {@link #maybeReadLocal} again); false if the stream is to
   *     read the usual way: it may not splice, or its socket held nothing just now (or ended), and
   *     a read waits for the next bytes or the end
   */
  private boolean spliceSends() {
    if (splicedSendInFlight) {
      return true; // its completion reads on
    }
    if (bytesToPeer < SPLICE_SENDS_AFTER
        || !session.splicesSends()
        || !SplicePipe.canDrainInto(session.channel(), local)) {
      return false;
    }
    if (sendPipe == null && (sendPipe = SplicePipe.openOrNull()) == null) {
      return false;
    }
    splicingSends = true;
    try {
      while (sendWindow > 0 && canSend() && !localEof && session.isWritable()) {
        int want =
            Math.min(
                sendWindow,
                Math.min(session.peerMaxFramePayload(), sendPipe.capacity() - SPLICED_HEADER_ROOM));
        int n;
        try {
          n = sendPipe.fill(SplicePipe.fd(local), want);
        } catch (java.io.IOException e) {
          onLocalError(e);
          return true;
        }
        if (n == 0) {
          return false;
        }
        bytesToPeer += n;
        sendWindow -= n;
        session.metrics().dataSent(n);
        session.metrics().dataSplicedOut(n);
        splicedSendInFlight = true;
        session
            .writeSpliced(id, sendPipe, n)
            .addListener(
                f -> {
                  splicedSendInFlight = false;
                  if (f.isSuccess() && !splicingSends) {
                    maybeReadLocal();
                  }
                });
        if (splicedSendInFlight) {
          break; // the websocket is full: the completion goes on
        }
      }
      if (sendWindow == 0) {
        startCreditStall();
      }
      return true;
    } finally {
      splicingSends = false;
    }
  }

  /**
   * What a spliced send leaves of its pipe's size: a page for the headers, so that a frame and its
   * headers fit the session's staging pipe (as large as the stream's) and leave in one go.
   */
  static final int SPLICED_HEADER_ROOM = 4 * 1024;

  /**
   * A stream splices what it sends once it has sent this much the usual way: a short exchange (an
   * API call, a dial check) costs no pipe, a transfer soon moves by pages.
   */
  static final int SPLICE_SENDS_AFTER = 64 * 1024;

  private void shutdownLocalOutput() {
    deliverToLocal(); // the batch so far goes out before the shutdown
    HalfClose.shutdownOutput(local);
  }

  // ---- the one way out -----------------------------------------------------------------------

  private void resetWith(ErrorCode code, String why) {
    if (state == State.CLOSED) {
      return;
    }
    if (state == State.DIALLING && openPromise != null) {
      failDial(code, new DialFailedException(DialStatus.INTERNAL_ERROR, why));
      return;
    }
    log.debug("stream {} to {}: reset {} ({})", id, target, code, why);
    session.writeAndFlush(new Reset(id, code, why));
    terminate(null);
  }

  private void failDial(ErrorCode code, DialFailedException failure) {
    if (state != State.DIALLING) {
      return;
    }
    session.writeAndFlush(new Reset(id, code, failure.getMessage()));
    terminate(failure);
  }

  /**
   * Ends the stream exactly once: forgets it, releases what it holds, fails a pending open, and
   * closes the local socket. A stream that finished both ways closes it after its pending writes;
   * any other end (reset, lost session, failed write) aborts it with a reset, so that the client or
   * target reads an error and a cut transfer never looks complete.
   */
  private void terminate(DialFailedException dialFailure) {
    if (state == State.CLOSED) {
      return;
    }
    boolean graceful = finishedBothWays && dialFailure == null;
    boolean wasDialling = state == State.DIALLING;
    if (log.isDebugEnabled()) {
      log.debug(
          "stream {} to {} via node {} closed from {}: {} bytes sent, {} received, {} ms{}",
          id,
          target,
          session.agentHello() == null ? "?" : session.agentHello().nodeName(),
          state,
          bytesToPeer,
          bytesFromPeer,
          ageNanos() / 1_000_000,
          dialFailure == null ? "" : " (" + dialFailure.getMessage() + ")");
    }
    state = State.CLOSED;
    endCreditStall();
    session.metrics().streamClosed(outcome(dialFailure, wasDialling), !wasDialling);
    cancelDialTimer();
    if (wasDialling) {
      session.dialSettled();
    }
    session.streamClosed(this);
    if (pendingOut != null) {
      pendingOut.release();
      pendingOut = null;
    }
    if (graceful && local != null) {
      deliverToLocal();
    } else {
      for (Object b; (b = toLocal.poll()) != null; ) {
        ReferenceCountUtil.release(b);
      }
      toLocalBytes = 0;
    }
    // Regions still queued for the socket or the websocket hold their pipe until they are written.
    ReferenceCountUtil.release(pipe);
    ReferenceCountUtil.release(sendPipe);
    pipe = null;
    sendPipe = null;
    if (openPromise != null && wasDialling) {
      openPromise.tryFailure(
          dialFailure != null
              ? dialFailure
              : new DialFailedException(DialStatus.INTERNAL_ERROR, "stream closed while dialling"));
    }
    // While dialling, the local socket is the server's client, whose handler answers the failed
    // CONNECT itself; on the agent there is no socket yet.
    if (local != null && !wasDialling) {
      if (graceful) {
        local.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
      } else {
        HalfClose.abort(local);
      }
    }
  }

  private SessionMetrics.StreamOutcome outcome(
      DialFailedException dialFailure, boolean wasDialling) {
    if (dialFailure != null && dialFailure.sessionLost()) {
      return SessionMetrics.StreamOutcome.SESSION_LOST;
    }
    if (wasDialling) {
      return SessionMetrics.StreamOutcome.DIAL_FAILED;
    }
    return finishedBothWays ? SessionMetrics.StreamOutcome.OK : SessionMetrics.StreamOutcome.RESET;
  }

  // ---- credit stalls -------------------------------------------------------------------------

  /** The send window fell to zero: the stream reads nothing more until credit arrives. */
  private void startCreditStall() {
    if (!creditStalled) {
      creditStalled = true;
      creditStalledSinceNanos = System.nanoTime();
      session.metrics().creditStalled();
    }
  }

  /** Credit arrived, or the stream ended: the stall's time is counted. */
  private void endCreditStall() {
    if (creditStalled) {
      creditStalled = false;
      session.metrics().creditResumed(System.nanoTime() - creditStalledSinceNanos);
    }
  }

  /** True while the stream's send window is zero. */
  public boolean isCreditStalled() {
    return creditStalled;
  }

  private void cancelDialTimer() {
    if (dialTimer != null) {
      dialTimer.cancel(false);
      dialTimer = null;
    }
  }

  @Override
  public String toString() {
    return "stream " + id + " to " + target + " (" + state + ")";
  }

  /** Lives in the local socket's pipeline and hands its events to the stream's event loop. */
  private final class LocalRelayHandler extends ChannelInboundHandlerAdapter {
    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
      // Reads take no more than the credit, so a stalled stream holds its window and nothing
      // more. Without credit the stream asks for no reads; the socket is read then only because
      // its peer has closed and Netty drains it to the end, which goes best in full-size reads.
      Transport.limitReads(ctx.channel(), () -> sendWindow > 0 ? sendWindow : Integer.MAX_VALUE);
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      if (!(msg instanceof ByteBuf buf)) {
        ReferenceCountUtil.release(msg);
        return;
      }
      if (!session.execute(() -> onLocalData(buf))) {
        buf.release();
      }
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
      if (HalfClose.isEndOfInput(evt)) {
        session.execute(TunnelStream.this::onLocalEof);
      }
      ReferenceCountUtil.release(evt);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      session.execute(() -> onLocalError(cause));
      ctx.close();
    }
  }
}

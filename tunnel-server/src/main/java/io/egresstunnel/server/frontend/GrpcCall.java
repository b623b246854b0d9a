package io.egresstunnel.server.frontend;

import io.egresstunnel.proto.metrics.TunnelMetrics;
import io.egresstunnel.proto.net.HalfClose;
import io.egresstunnel.proto.net.Splice;
import io.egresstunnel.proto.session.TunnelStream;
import io.egresstunnel.server.PeerCertificates;
import io.egresstunnel.server.TunnelServer;
import io.egresstunnel.server.admin.ServerMetrics;
import io.egresstunnel.server.frontend.grpc.Packet;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http2.DefaultHttp2DataFrame;
import io.netty.handler.codec.http2.DefaultHttp2Headers;
import io.netty.handler.codec.http2.DefaultHttp2HeadersFrame;
import io.netty.handler.codec.http2.Http2DataFrame;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.handler.codec.http2.Http2HeadersFrame;
import io.netty.handler.codec.http2.Http2ResetFrame;
import io.netty.util.ReferenceCountUtil;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One call of Konnectivity's {@code /ProxyService/Proxy} on an HTTP/2 stream: one {@code DIAL_REQ},
 * answered by {@code DIAL_RSP}; then {@code DATA} both ways; {@code CLOSE_REQ} from the client or
 * the target's end gives {@code CLOSE_RSP}. The dial itself is {@link TunnelDial}'s, as for
 * CONNECT, and the stream machinery is the same: below the relay handler this class turns DATA
 * packets into bytes and bytes into DATA packets, so {@link TunnelStream} and {@link Splice} see a
 * byte channel. HTTP/2 flow control carries the credit: the stream channel reads (and returns
 * window to the client) only when the relay asks for more.
 */
final class GrpcCall extends ChannelDuplexHandler {
  private static final Logger log = LoggerFactory.getLogger(GrpcCall.class);
  static final String PATH = "/ProxyService/Proxy";

  /** gRPC's default maximum message size, which konnectivity-client keeps. */
  static final int MAX_MESSAGE = 4 * 1024 * 1024;

  private static final AtomicLong connectIds = new AtomicLong();

  private enum State {
    HEADERS,
    WAITING_DIAL,
    DIALLING,
    CONNECTED,
    ENDED
  }

  private final TunnelServer server;
  private State state = State.HEADERS;
  private final ArrayDequeBytes pending = new ArrayDequeBytes();
  private long random;
  private long connectId;
  private boolean forwardedThisRead;
  private boolean relayWantsData;
  private boolean closeRequested;

  GrpcCall(TunnelServer server) {
    this.server = server;
  }

  @Override
  public void handlerRemoved(ChannelHandlerContext ctx) {
    pending.clear();
  }

  @Override
  public void channelActive(ChannelHandlerContext ctx) {
    // When the connection goes, the call goes, even if its relay is stalled and reads nothing:
    // Netty closes an HTTP/2 stream channel only once its queued frames are read.
    ctx.channel().parent().closeFuture().addListener(f -> ctx.channel().close());
    ctx.read();
    ctx.fireChannelActive();
  }

  // ---- inbound: frames from the client -------------------------------------------------------

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    try {
      if (msg instanceof Http2HeadersFrame headers) {
        onHeaders(ctx, headers);
      } else if (msg instanceof Http2DataFrame data) {
        if (state == State.ENDED) {
          return;
        }
        pending.add(data.content().retain());
        drainMessages(ctx);
        if (data.isEndStream() && state != State.ENDED) {
          onClientEnd(ctx); // konnectivity-client never half-closes; take it as CLOSE_REQ
        }
      }
    } finally {
      ReferenceCountUtil.release(msg);
    }
  }

  /**
   * Netty hands a stream's RST_STREAM over as an event, at once, rather than behind the DATA frames
   * that a stalled relay has not read: the client cancelled the call, so it ends now, whatever it
   * still holds, and the stream to the target is reset with it.
   */
  @Override
  public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
    if (evt instanceof Http2ResetFrame) {
      boolean cut = state == State.CONNECTED && !closeRequested;
      state = State.ENDED;
      if (cut) {
        HalfClose.abort(ctx.channel());
      } else {
        ctx.close();
      }
      return;
    }
    ctx.fireUserEventTriggered(evt);
  }

  @Override
  public void channelReadComplete(ChannelHandlerContext ctx) {
    boolean forwarded = forwardedThisRead;
    forwardedThisRead = false;
    if (state == State.HEADERS || state == State.WAITING_DIAL || state == State.DIALLING) {
      ctx.read(); // the request is not complete, or the client may give up its dial (DIAL_CLS)
    } else if (state == State.CONNECTED && relayWantsData && !forwarded) {
      ctx.read(); // a partial message: the relay asked for data and got none yet
    }
    ctx.fireChannelReadComplete();
  }

  @Override
  public void read(ChannelHandlerContext ctx) {
    relayWantsData = true;
    ctx.read();
  }

  private void onHeaders(ChannelHandlerContext ctx, Http2HeadersFrame frame) {
    if (state != State.HEADERS) {
      return; // trailers from the client: nothing to do
    }
    Http2Headers h = frame.headers();
    CharSequence contentType = h.get("content-type");
    if (!"POST".contentEquals(h.method() == null ? "" : h.method())
        || !PATH.contentEquals(h.path() == null ? "" : h.path())) {
      endWithStatus(ctx, 12, "unknown method " + h.path() + "; this server serves " + PATH);
      return;
    }
    if (contentType == null || !contentType.toString().startsWith("application/grpc")) {
      endWithStatus(ctx, 3, "content-type " + contentType + " is not application/grpc");
      return;
    }
    if (h.contains("grpc-encoding") && !"identity".contentEquals(h.get("grpc-encoding"))) {
      endWithStatus(ctx, 12, "grpc-encoding " + h.get("grpc-encoding") + " is not supported");
      return;
    }
    String refusal = TunnelDial.protocolRefusal(server, ServerMetrics.Protocol.GRPC);
    if (refusal != null) {
      endWithStatus(ctx, 12, refusal); // UNIMPLEMENTED, before any dial
      return;
    }
    state = State.WAITING_DIAL;
    Http2Headers response =
        new DefaultHttp2Headers().status("200").set("content-type", "application/grpc");
    ctx.writeAndFlush(new DefaultHttp2HeadersFrame(response, false));
  }

  /** Takes every whole gRPC message out of what has arrived. */
  private void drainMessages(ChannelHandlerContext ctx) {
    while (state != State.ENDED && pending.readable() >= 5) {
      int compressed = pending.getUnsignedByte(0);
      long length = 0;
      for (int i = 1; i < 5; i++) {
        length = (length << 8) | pending.getUnsignedByte(i);
      }
      if (compressed != 0) {
        endWithStatus(ctx, 13, "a compressed message without grpc-encoding");
        return;
      }
      if (length > MAX_MESSAGE) {
        endWithStatus(ctx, 8, "a message of " + length + " bytes exceeds " + MAX_MESSAGE);
        return;
      }
      if (pending.readable() < 5 + length) {
        return;
      }
      pending.skip(5);
      ByteBuf message = pending.take((int) length, ctx.alloc());
      Packet packet;
      try {
        packet = Packet.decode(message);
      } catch (Packet.MalformedPacketException e) {
        endWithStatus(ctx, 13, "malformed packet: " + e.getMessage());
        return;
      } finally {
        message.release();
      }
      onPacket(ctx, packet);
    }
  }

  /**
   * The DATA frames' bytes not yet taken as messages, in order, without copying: a message is a
   * slice of one frame, or a composite of slices when it spans several.
   */
  private static final class ArrayDequeBytes {
    private final java.util.ArrayDeque<ByteBuf> bufs = new java.util.ArrayDeque<>();
    private long readable;

    void add(ByteBuf b) {
      if (b.isReadable()) {
        bufs.add(b);
        readable += b.readableBytes();
      } else {
        b.release();
      }
    }

    long readable() {
      return readable;
    }

    int getUnsignedByte(int offset) {
      for (ByteBuf b : bufs) {
        if (offset < b.readableBytes()) {
          return b.getUnsignedByte(b.readerIndex() + offset);
        }
        offset -= b.readableBytes();
      }
      throw new IndexOutOfBoundsException();
    }

    void skip(int n) {
      take(n, null).release();
    }

    /** The next {@code n} bytes, owned by the caller. */
    ByteBuf take(int n, io.netty.buffer.ByteBufAllocator alloc) {
      readable -= n;
      ByteBuf head = bufs.peek();
      if (n == 0) {
        return Unpooled.EMPTY_BUFFER;
      }
      if (head.readableBytes() >= n) {
        ByteBuf out = head.readRetainedSlice(n);
        dropIfDone(head);
        return out;
      }
      CompositeByteBuf out =
          (alloc == null ? io.netty.buffer.ByteBufAllocator.DEFAULT : alloc).compositeBuffer();
      while (n > 0) {
        ByteBuf b = bufs.peek();
        int k = Math.min(n, b.readableBytes());
        out.addComponent(true, b.readRetainedSlice(k));
        dropIfDone(b);
        n -= k;
      }
      return out;
    }

    private void dropIfDone(ByteBuf b) {
      if (!b.isReadable()) {
        bufs.poll().release();
      }
    }

    void clear() {
      for (ByteBuf b; (b = bufs.poll()) != null; ) {
        b.release();
      }
      readable = 0;
    }
  }

  private void onPacket(ChannelHandlerContext ctx, Packet packet) {
    if (packet instanceof Packet.DialRequest dial) {
      onDial(ctx, dial);
    } else if (packet instanceof Packet.Data data) {
      if (state != State.CONNECTED || data.connectId() != connectId || closeRequested) {
        data.release();
        endWithStatus(ctx, 9, "DATA for connection " + data.connectId() + " that is not open");
        return;
      }
      if (data.data().isReadable()) {
        forwardedThisRead = true;
        relayWantsData = false;
        ctx.fireChannelRead(data.data());
      } else {
        data.release();
      }
    } else if (packet instanceof Packet.CloseRequest close) {
      if (state != State.CONNECTED || close.connectId() != connectId) {
        endWithStatus(ctx, 9, "CLOSE_REQ for connection " + close.connectId() + " not open");
        return;
      }
      onClientEnd(ctx);
    } else if (packet instanceof Packet.CloseDial cls) {
      if (cls.random() == random && state == State.DIALLING) {
        log.debug("GRPC dial {} cancelled by the client", random);
        endWithStatus(ctx, 0, "");
      }
    } else {
      endWithStatus(ctx, 9, packet.type() + " is not a packet a client sends");
    }
  }

  /**
   * The client is done with the connection (CLOSE_REQ): the end of its data goes to the target, and
   * CLOSE_RSP follows once the stream has ended (the target closes), within the client's wait.
   */
  private void onClientEnd(ChannelHandlerContext ctx) {
    if (state == State.CONNECTED && !closeRequested) {
      closeRequested = true;
      ctx.fireUserEventTriggered(io.netty.channel.socket.ChannelInputShutdownEvent.INSTANCE);
    } else if (state != State.CONNECTED) {
      endWithStatus(ctx, 0, "");
    }
  }

  private void onDial(ChannelHandlerContext ctx, Packet.DialRequest dial) {
    if (state != State.WAITING_DIAL) {
      endWithStatus(ctx, 9, "a second DIAL_REQ on one call");
      return;
    }
    random = dial.random();
    if (!"tcp".equals(dial.protocol())) {
      dialFailed(ctx, "protocol " + dial.protocol() + " is not supported; only tcp");
      return;
    }
    String refusal = TunnelDial.refusal(server, PeerCertificates.of(ctx.channel()));
    if (refusal == null && server.isDraining()) {
      refusal = "this tunnel server is shutting down; retry on another";
    }
    if (refusal != null) {
      dialFailed(ctx, refusal);
      return;
    }
    ConnectTarget target;
    try {
      target = ConnectTarget.parse(dial.address());
    } catch (IllegalArgumentException e) {
      dialFailed(ctx, e.getMessage());
      return;
    }
    state = State.DIALLING;
    TunnelDial.start(server, new Dialling(ctx), target);
  }

  private void dialFailed(ChannelHandlerContext ctx, String reason) {
    server.metrics().grpcDialAnswered(false);
    ctx.write(message(ctx, new Packet.DialResponse(reason, 0, random)));
    endWithStatus(ctx, 0, "");
  }

  /** This call's side of its dial: DIAL_RSP, then the relay. */
  private final class Dialling extends TunnelDial.ContextClient {
    Dialling(ChannelHandlerContext ctx) {
      super(ctx, ServerMetrics.Protocol.GRPC, false);
    }

    @Override
    public void connected(TunnelStream stream, String node) {
      log.debug("GRPC dial {} via node {} as stream {}", stream.target(), node, stream.id());
      answerConnected();
      ctx.pipeline().addLast("stream-relay", stream.newRelayHandler());
      stream.startRelay();
    }

    @Override
    public void connectedDirect(Channel target) {
      answerConnected();
      TunnelMetrics m = server.metrics().tunnel();
      Splice.start(
          ctx.channel(), target, m.directBytesToTarget()::inc, m.directBytesToClient()::inc);
    }

    private void answerConnected() {
      connectId = connectIds.incrementAndGet();
      state = State.CONNECTED;
      server.metrics().grpcDialAnswered(true);
      ctx.writeAndFlush(message(ctx, new Packet.DialResponse("", connectId, random)));
    }

    @Override
    public void failed(HttpResponseStatus status, String reason) {
      if (state == State.DIALLING) {
        dialFailed(ctx, reason);
      }
    }
  }

  // ---- outbound: bytes from the relay, and the end -------------------------------------------

  @Override
  public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
    if (msg instanceof ByteBuf buf && !(msg instanceof Http2DataFrame)) {
      if (state != State.CONNECTED) {
        log.debug("GRPC call dropped {} bytes written after its end", buf.readableBytes());
        buf.release();
        promise.setFailure(new IllegalStateException("the call has ended"));
        return;
      }
      if (!buf.isReadable()) {
        // An empty write marks a point in the stream (everything before it is out); an empty DATA
        // packet would read as EOF at the client, so an empty HTTP/2 frame stands for it.
        buf.release();
        ctx.write(new DefaultHttp2DataFrame(Unpooled.EMPTY_BUFFER, false), promise);
        return;
      }
      ctx.write(message(ctx, new Packet.Data(connectId, "", buf)), promise);
      return;
    }
    ctx.write(msg, promise);
  }

  /**
   * The relay closes the stream's local end: for a gRPC call that is CLOSE_RSP (with the reason,
   * when the stream was cut short) and the call's end.
   */
  @Override
  public void close(ChannelHandlerContext ctx, ChannelPromise promise) {
    if (state == State.CONNECTED) {
      String error =
          HalfClose.wasAborted(ctx.channel()) ? "the connection to the target was cut short" : "";
      ctx.write(message(ctx, new Packet.CloseResponse(error, connectId)));
      endWithStatus(ctx, 0, "");
      // The HTTP/2 stream closes when the client cancels its side, as it does after CLOSE_RSP (a
      // reset from this side could overtake what is still queued for the client).
      ctx.channel().closeFuture().addListener(f -> promise.trySuccess());
      return;
    }
    ctx.close(promise);
  }

  private static DefaultHttp2DataFrame message(ChannelHandlerContext ctx, Packet p) {
    return new DefaultHttp2DataFrame(Packet.encodeGrpcMessage(p, ctx.alloc()), false);
  }

  /** Ends the call with trailers; the HTTP/2 stream then closes. Only once. */
  private void endWithStatus(ChannelHandlerContext ctx, int grpcStatus, String message) {
    if (state == State.ENDED) {
      return;
    }
    boolean headersSent = state != State.HEADERS;
    state = State.ENDED;
    if (grpcStatus != 0) {
      log.debug("GRPC call from {} ends: {} {}", ctx.channel().parent(), grpcStatus, message);
    }
    Http2Headers trailers = new DefaultHttp2Headers();
    if (!headersSent) {
      trailers.status("200").set("content-type", "application/grpc");
    }
    trailers.setInt("grpc-status", grpcStatus);
    if (!message.isEmpty()) {
      trailers.set("grpc-message", percentEncode(message));
    }
    // The client ends its side once it has the trailers (konnectivity-client cancels the call);
    // one that does not is closed after END_GRACE.
    ctx.writeAndFlush(new DefaultHttp2HeadersFrame(trailers, true))
        .addListener(
            f ->
                ctx.executor()
                    .schedule(() -> ctx.channel().close(), END_GRACE_SECONDS, TimeUnit.SECONDS));
  }

  /** How long a call that has ended waits for its client to end its side too. */
  static final long END_GRACE_SECONDS = 10;

  /** gRPC's grpc-message encoding: printable ASCII but '%' as is, the rest as %XX of UTF-8. */
  private static String percentEncode(String s) {
    StringBuilder out = new StringBuilder();
    for (byte b : s.getBytes(java.nio.charset.StandardCharsets.UTF_8)) {
      int c = b & 0xff;
      if (c >= 0x20 && c < 0x7f && c != '%') {
        out.append((char) c);
      } else {
        out.append('%').append(String.format("%02X", c));
      }
    }
    return out.toString();
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    log.debug("GRPC call from {} failed", ctx.channel().parent(), cause);
    ctx.close();
  }
}

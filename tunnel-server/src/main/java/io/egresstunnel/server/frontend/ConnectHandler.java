package io.egresstunnel.server.frontend;

import io.egresstunnel.proto.metrics.TunnelMetrics;
import io.egresstunnel.proto.net.Addresses;
import io.egresstunnel.proto.net.HalfClose;
import io.egresstunnel.proto.net.Splice;
import io.egresstunnel.proto.session.TunnelStream;
import io.egresstunnel.server.PeerCertificates;
import io.egresstunnel.server.TunnelServer;
import io.egresstunnel.server.admin.ServerMetrics;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.channel.socket.DuplexChannel;
import io.netty.handler.codec.DecoderResult;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpRequestDecoder;
import io.netty.handler.codec.http.HttpResponseEncoder;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.TooLongHttpHeaderException;
import io.netty.handler.codec.http.TooLongHttpLineException;
import io.netty.util.ReferenceCountUtil;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves one HTTP CONNECT, exactly as the kube-apiserver's egress selector expects. The target
 * comes from the request line. {@code 200} is written only once the far end is connected, and
 * nothing follows it until target bytes arrive. Every failure is one status line with a one-line
 * plain-text reason, and the connection closes.
 *
 * <p>The channel runs with AUTO_READ off: this handler reads until it has one request, then reads
 * nothing more until the relay takes over.
 */
public final class ConnectHandler extends ChannelInboundHandlerAdapter {
  private static final Logger log = LoggerFactory.getLogger(ConnectHandler.class);
  private static final String HTTP_DECODER = "http-decoder";
  private static final String HTTP_ENCODER = "http-encoder";
  private static final ByteBuf CONNECTED =
      Unpooled.unreleasableBuffer(
          Unpooled.copiedBuffer(
                  "HTTP/1.1 200 Connection established\r\n\r\n", StandardCharsets.US_ASCII)
              .asReadOnly());

  private final TunnelServer server;
  private boolean requestSeen;
  private Object inputEnd;
  private io.netty.util.concurrent.ScheduledFuture<?> requestTimer;

  public ConnectHandler(TunnelServer server) {
    this.server = server;
  }

  @Override
  public void channelActive(ChannelHandlerContext ctx) {
    // Slowloris: the whole request must arrive within the read timeout.
    long timeout = server.config().limits().connectReadTimeout().toMillis();
    requestTimer =
        ctx.executor()
            .schedule(
                () -> {
                  if (!requestSeen && ctx.channel().isActive()) {
                    respond(
                        ctx,
                        HttpResponseStatus.REQUEST_TIMEOUT,
                        "the CONNECT request was not complete within " + timeout + " ms");
                  }
                },
                timeout,
                java.util.concurrent.TimeUnit.MILLISECONDS);
    ctx.read();
    ctx.fireChannelActive();
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    cancelRequestTimer();
    ctx.fireChannelInactive();
  }

  private void cancelRequestTimer() {
    if (requestTimer != null) {
      requestTimer.cancel(false);
      requestTimer = null;
    }
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    try {
      if (msg instanceof HttpRequest request && !requestSeen) {
        requestSeen = true;
        cancelRequestTimer();
        handle(ctx, request);
      }
    } finally {
      ReferenceCountUtil.release(msg);
    }
  }

  @Override
  public void channelReadComplete(ChannelHandlerContext ctx) {
    if (!requestSeen && inputEnd == null) {
      ctx.read(); // the request line or headers are not complete yet
    }
  }

  /**
   * The client may end its side right behind its request ({@code printf ... | nc -N}), and a
   * transport may report that before the tunnel exists. The end is kept and handed to the relay
   * once it takes over, after the bytes before it; an end before a whole request gets 400.
   */
  @Override
  public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
    if (HalfClose.isEndOfInput(evt)) {
      if (inputEnd == null) {
        inputEnd = evt;
        if (!requestSeen) {
          requestSeen = true;
          cancelRequestTimer();
          respond(
              ctx,
              HttpResponseStatus.BAD_REQUEST,
              "the client ended its side before the CONNECT request was complete");
        }
      }
      return;
    }
    ctx.fireUserEventTriggered(evt);
  }

  /** Hands an end of input that came before the relay to the relay, after the bytes before it. */
  private void replayInputEnd(ChannelPipeline p) {
    if (inputEnd != null) {
      p.fireUserEventTriggered(inputEnd);
    }
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    log.debug("CONNECT from {} failed", ctx.channel().remoteAddress(), cause);
    ctx.close();
  }

  private void handle(ChannelHandlerContext ctx, HttpRequest request) {
    DecoderResult result = request.decoderResult();
    if (result.isFailure()) {
      Throwable cause = result.cause();
      if (cause instanceof TooLongHttpHeaderException) {
        respond(
            ctx,
            HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers exceed " + server.config().limits().maxHeaderBytes() + " bytes");
      } else if (cause instanceof TooLongHttpLineException) {
        respond(
            ctx,
            HttpResponseStatus.REQUEST_URI_TOO_LONG,
            "request line exceeds " + server.config().limits().maxRequestLine() + " bytes");
      } else {
        respond(ctx, HttpResponseStatus.BAD_REQUEST, "malformed request: " + cause.getMessage());
      }
      return;
    }
    if (!"HTTP".equals(request.protocolVersion().protocolName())
        || request.protocolVersion().majorVersion() != 1) {
      respond(
          ctx,
          HttpResponseStatus.HTTP_VERSION_NOT_SUPPORTED,
          "HTTP version " + request.protocolVersion() + " is not supported; use HTTP/1.1");
      return;
    }
    String refusal = TunnelDial.protocolRefusal(server, ServerMetrics.Protocol.CONNECT);
    if (refusal == null) {
      refusal = TunnelDial.refusal(server, PeerCertificates.of(ctx));
    }
    if (refusal != null) {
      respond(ctx, HttpResponseStatus.FORBIDDEN, refusal);
      return;
    }
    if (server.isDraining()) {
      respond(
          ctx,
          HttpResponseStatus.SERVICE_UNAVAILABLE,
          "this tunnel server is shutting down; retry on another");
      return;
    }
    if (!HttpMethod.CONNECT.equals(request.method())) {
      FullHttpResponse response =
          errorResponse(
              HttpResponseStatus.METHOD_NOT_ALLOWED,
              "method " + request.method() + " is not supported; this proxy only serves CONNECT");
      response.headers().set(HttpHeaderNames.ALLOW, "CONNECT");
      if (HttpMethod.HEAD.equals(request.method())) {
        // A response to HEAD has no body; Content-Length still says what it would be.
        FullHttpResponse head = response.replace(Unpooled.EMPTY_BUFFER);
        response.release();
        response = head;
      }
      send(ctx, response);
      return;
    }
    ConnectTarget target;
    try {
      target = ConnectTarget.parse(request.uri());
    } catch (IllegalArgumentException e) {
      respond(ctx, HttpResponseStatus.BAD_REQUEST, e.getMessage());
      return;
    }
    TunnelDial.start(server, new Dialling(ctx), target);
  }

  /** This CONNECT's side of its dial: the 200 and the relay, or the failure's status. */
  private final class Dialling extends TunnelDial.ContextClient {
    Dialling(ChannelHandlerContext ctx) {
      super(ctx, ServerMetrics.Protocol.CONNECT, true);
    }

    @Override
    public void connected(TunnelStream stream, String node) {
      log.debug("CONNECT {} via node {} as stream {}", stream.target(), node, stream.id());
      ChannelPipeline p = ctx.pipeline();
      p.addLast("stream-relay", stream.newRelayHandler());
      switchToRaw(p);
      replayInputEnd(p);
      ctx.channel().writeAndFlush(CONNECTED.duplicate());
      server.metrics().connectAnswered(200);
      stream.startRelay();
    }

    @Override
    public void connectedDirect(Channel target) {
      Channel client = ctx.channel();
      ChannelPipeline p = ctx.pipeline();
      p.remove(ConnectHandler.this);
      TunnelMetrics m = server.metrics().tunnel();
      Splice.start(client, target, m.directBytesToTarget()::inc, m.directBytesToClient()::inc);
      removeHttpCodec(p);
      replayInputEnd(p);
      client.writeAndFlush(CONNECTED.duplicate());
      server.metrics().connectAnswered(200);
    }

    @Override
    public void failed(HttpResponseStatus status, String reason) {
      respond(ctx, status, reason);
    }
  }

  /**
   * Leaves HTTP behind: this handler goes first, then the codec, so that bytes the client sent
   * after its request (and the codec buffered) reach the relay that was added last.
   */
  private void switchToRaw(ChannelPipeline p) {
    p.remove(this);
    removeHttpCodec(p);
  }

  /**
   * The CONNECT listener's HTTP codec: a decoder that stops after one request, so that bytes
   * pipelined behind it (a TLS ClientHello, say) stay buffered, undecoded, and are handed on when
   * the decoder is removed.
   */
  public static void addHttpCodec(ChannelPipeline p, HttpDecoderConfig config) {
    p.addLast(HTTP_DECODER, new OneRequestDecoder(config));
    p.addLast(HTTP_ENCODER, new HttpResponseEncoder());
  }

  /**
   * Decodes one request and then nothing: what follows it stays buffered as it came, and goes on to
   * the relay when the decoder is removed. {@code setSingleDecode} alone stops decoding only until
   * the next read; behind TLS, each record is a read of its own, and a client's first bytes in the
   * record after its CONNECT were decoded as a next request and lost.
   */
  static final class OneRequestDecoder extends HttpRequestDecoder {
    private boolean requestDone;

    OneRequestDecoder(HttpDecoderConfig config) {
      super(config);
      setSingleDecode(true);
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf buffer, List<Object> out)
        throws Exception {
      if (requestDone) {
        return;
      }
      int before = out.size();
      super.decode(ctx, buffer, out);
      for (int i = before; i < out.size(); i++) {
        if (out.get(i) instanceof LastHttpContent) {
          requestDone = true;
        }
      }
    }

    @Override
    protected void decodeLast(ChannelHandlerContext ctx, ByteBuf in, List<Object> out)
        throws Exception {
      if (!requestDone) {
        super.decodeLast(ctx, in, out);
      }
    }

    /**
     * The end of the client's input after its request passes on to ConnectHandler, which keeps it
     * for the relay; the decoder keeps the bytes before it (Netty's decoder would drop them here).
     */
    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
      if (requestDone && evt instanceof ChannelInputShutdownEvent) {
        ctx.fireUserEventTriggered(evt);
        return;
      }
      super.userEventTriggered(ctx, evt);
    }
  }

  /** Takes the CONNECT side out of a pipeline whose client speaks another protocol. */
  static void removeFrom(ChannelPipeline p) {
    removeHttpCodec(p);
    p.remove(ConnectHandler.class);
  }

  @Override
  public void handlerRemoved(ChannelHandlerContext ctx) {
    cancelRequestTimer(); // the CONNECT read timeout belongs to the CONNECT request only
  }

  private static void removeHttpCodec(ChannelPipeline p) {
    p.remove(HTTP_ENCODER);
    p.remove(HTTP_DECODER);
  }

  private void respond(ChannelHandlerContext ctx, HttpResponseStatus status, String reason) {
    send(ctx, errorResponse(status, reason));
  }

  private static FullHttpResponse errorResponse(HttpResponseStatus status, String reason) {
    String line = ConnectTarget.printable(reason, 1000) + "\n";
    FullHttpResponse response =
        new DefaultFullHttpResponse(
            HttpVersion.HTTP_1_1, status, Unpooled.copiedBuffer(line, StandardCharsets.UTF_8));
    response
        .headers()
        .set(HttpHeaderNames.CONTENT_TYPE, "text/plain; charset=utf-8")
        .setInt(HttpHeaderNames.CONTENT_LENGTH, response.content().readableBytes())
        .set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
    return response;
  }

  private void send(ChannelHandlerContext ctx, FullHttpResponse response) {
    server.metrics().connectAnswered(response.status().code());
    if (log.isDebugEnabled()) {
      log.debug(
          "CONNECT from {} answered {}: {}",
          Addresses.text(ctx.channel().remoteAddress()),
          response.status(),
          response.content().toString(StandardCharsets.UTF_8).trim());
    }
    ctx.writeAndFlush(response).addListener(f -> closeAfterAnswer(ctx.channel()));
  }

  /**
   * Ends a connection whose CONNECT was refused so that the client can read the answer: a plain
   * close with the client's late bytes unread would make the kernel send a reset, which destroys
   * the answer at the client before it is read (a slowloris client that is still dribbling, say).
   * So the answer is followed by our end of data, and what the client still sends is read and
   * dropped until its own end, or for a second at most.
   */
  private static void closeAfterAnswer(Channel ch) {
    if (!ch.isActive()) {
      return;
    }
    if (ch instanceof DuplexChannel duplex && duplex.isInputShutdown()) {
      HalfClose.shutdownOutput(ch).addListener(f -> ch.close()); // nothing more can come
      return;
    }
    ChannelPipeline p = ch.pipeline();
    for (String name : List.of(HTTP_DECODER, HTTP_ENCODER, "connect")) {
      if (p.get(name) != null) {
        p.remove(name);
      }
    }
    p.addLast(
        "discard",
        new ChannelInboundHandlerAdapter() {
          @Override
          public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ReferenceCountUtil.release(msg);
          }

          @Override
          public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            if (HalfClose.isEndOfInput(evt)) {
              ctx.close();
            }
            ReferenceCountUtil.release(evt);
          }

          @Override
          public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
          }
        });
    HalfClose.shutdownOutput(ch);
    ch.eventLoop().schedule(() -> ch.close(), 1, java.util.concurrent.TimeUnit.SECONDS);
    ch.config().setAutoRead(true);
  }
}

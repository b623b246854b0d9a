package io.egresstunnel.server.frontend;

import io.egresstunnel.server.TunnelServer;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelPipeline;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.http2.Http2CodecUtil;
import io.netty.handler.codec.http2.Http2FrameCodec;
import io.netty.handler.codec.http2.Http2FrameCodecBuilder;
import io.netty.handler.codec.http2.Http2MultiplexHandler;
import io.netty.handler.codec.http2.Http2Settings;
import io.netty.handler.codec.http2.Http2StreamChannel;
import java.util.List;

/**
 * Tells, per connection on a CONNECT listener, which protocol the client speaks: the HTTP/2 client
 * preface means Konnectivity's GRPC (the apiserver's {@code proxyProtocol: GRPC}), anything else is
 * HTTP CONNECT. It sits before the CONNECT handler and decides on the first bytes that differ from
 * the preface (the first byte, for a CONNECT), then steps aside with the bytes it has seen.
 */
public final class ProtocolDetector extends ByteToMessageDecoder {
  private static final org.slf4j.Logger log =
      org.slf4j.LoggerFactory.getLogger(ProtocolDetector.class);
  private static final ByteBuf PREFACE = Http2CodecUtil.connectionPrefaceBuf();

  /** The HTTP/2 stream window per call, and the connection's: one call cannot hold the rest. */
  static final int STREAM_WINDOW = 256 * 1024;

  static final int CONNECTION_WINDOW = 16 * 1024 * 1024;

  /** Stream resets a GRPC client may send per second before its connection is closed. */
  static final int MAX_RESETS_PER_SECOND = 20_000;

  private final TunnelServer server;

  public ProtocolDetector(TunnelServer server) {
    this.server = server;
  }

  @Override
  protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
    int n = Math.min(in.readableBytes(), PREFACE.readableBytes());
    if (!ByteBufUtil.equals(in, in.readerIndex(), PREFACE, 0, n)) {
      ctx.pipeline().remove(this); // HTTP CONNECT: the bytes go on to its decoder
      return;
    }
    if (n < PREFACE.readableBytes()) {
      return; // so far the preface; read on (the CONNECT handler asks for more)
    }
    switchToGrpc(ctx.pipeline(), server);
    ctx.pipeline().remove(this);
  }

  private static void switchToGrpc(ChannelPipeline p, TunnelServer server) {
    ConnectHandler.removeFrom(p);
    Http2FrameCodec codec =
        Http2FrameCodecBuilder.forServer()
            // konnectivity-client cancels every call once it has CLOSE_RSP: one RST_STREAM per
            // dial, thousands a second on a shared connection. Netty's rapid-reset guard (200 per
            // 30 s) would close a busy apiserver's connection, so it allows MAX_RESETS_PER_SECOND.
            .decoderEnforceMaxRstFramesPerWindow(MAX_RESETS_PER_SECOND, 1)
            .initialSettings(
                Http2Settings.defaultSettings()
                    .initialWindowSize(STREAM_WINDOW)
                    .maxConcurrentStreams(server.config().limits().maxStreamsPerAgent())
                    .maxHeaderListSize(server.config().limits().maxHeaderBytes()))
            .build();
    p.addLast("h2", codec);
    p.addLast(
        "h2-calls",
        new Http2MultiplexHandler(
            new ChannelInitializer<Http2StreamChannel>() {
              @Override
              protected void initChannel(Http2StreamChannel ch) {
                ch.config().setAutoRead(false);
                ch.pipeline().addLast("grpc", new GrpcCall(server));
              }
            }));
    p.addLast(
        "h2-errors",
        new io.netty.channel.ChannelInboundHandlerAdapter() {
          @Override
          public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            // A client that goes away mid-connection (a reset): its calls end with it.
            log.debug("GRPC connection from {} failed", ctx.channel().remoteAddress(), cause);
            ctx.close();
          }
        });
    try {
      codec
          .connection()
          .local()
          .flowController()
          .incrementWindowSize(
              codec.connection().connectionStream(),
              CONNECTION_WINDOW - Http2CodecUtil.DEFAULT_WINDOW_SIZE);
    } catch (io.netty.handler.codec.http2.Http2Exception e) {
      throw new IllegalStateException(e);
    }
    // HTTP/2 reads its connection continuously; each call's stream window bounds what it holds.
    p.channel().config().setAutoRead(true);
  }
}

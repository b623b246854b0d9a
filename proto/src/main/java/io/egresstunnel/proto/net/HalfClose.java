package io.egresstunnel.proto.net;

import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelPromise;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.channel.socket.DuplexChannel;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.ssl.SslCloseCompletionEvent;
import io.netty.handler.ssl.SslHandler;

/**
 * How a relayed socket ends, the same on every listener (TCP, TLS, Unix socket) and transport:
 *
 * <ul>
 *   <li>its peer's end of data is a TCP or Unix-socket FIN, or a TLS {@code close_notify} ({@link
 *       #isEndOfInput}); TLS 1.3 lets the other direction go on after it;
 *   <li>our end of data follows everything written before it, and is a {@code close_notify} then a
 *       FIN on TLS, a FIN otherwise ({@link #shutdownOutput});
 *   <li>an abnormal end (a stream reset, a lost agent session, a drain that ran out of time) is a
 *       TCP reset, with no {@code close_notify}, so that the peer reads an error rather than a
 *       clean end: a cut transfer must not look complete ({@link #abort}). A Unix socket has no
 *       reset; there the peer reads an EOF.
 * </ul>
 */
public final class HalfClose {
  private HalfClose() {}

  /**
   * Whether {@code ch} can end one direction and go on with the other: a socket can; a gRPC call's
   * HTTP/2 stream cannot (Konnectivity has no half-close), so once either side ends, a relay ends
   * it whole, after the data.
   */
  public static boolean canHalfClose(Channel ch) {
    return ch instanceof DuplexChannel;
  }

  /** Whether {@code evt}, a user event from a relayed socket's pipeline, means its input ended. */
  public static boolean isEndOfInput(Object evt) {
    return evt == ChannelInputShutdownEvent.INSTANCE
        || evt instanceof SslCloseCompletionEvent close && close.isSuccess();
  }

  /**
   * Ends {@code ch}'s output once everything written to it so far is out. The future completes when
   * the output is shut (or failed to be); a channel that cannot half-close is left as it is.
   */
  public static ChannelFuture shutdownOutput(Channel ch) {
    ChannelPromise done = ch.newPromise();
    if (!(ch instanceof DuplexChannel duplex)) {
      return done.setSuccess(); // see canHalfClose: the relay ends such a channel whole
    }
    // An empty write completes after every earlier one: the end goes out only after the data.
    ch.writeAndFlush(Unpooled.EMPTY_BUFFER)
        .addListener(
            f -> {
              SslHandler tls = ch.pipeline().get(SslHandler.class);
              if (tls != null && ch.isActive()) {
                tls.closeOutbound().addListener(g -> duplex.shutdownOutput(done));
              } else {
                duplex.shutdownOutput(done);
              }
            });
    return done;
  }

  /**
   * Closes {@code ch} abortively: a TCP socket sends a reset ({@code SO_LINGER} 0) and what is
   * still queued for it is dropped; TLS sends no {@code close_notify}. Any thread.
   */
  public static void abort(Channel ch) {
    if (ch.eventLoop().inEventLoop()) {
      abort0(ch);
    } else {
      ch.eventLoop().execute(() -> abort0(ch));
    }
  }

  /** Whether {@link #abort} closed {@code ch}: its handlers may say so to their peer. */
  public static boolean wasAborted(Channel ch) {
    return ch.hasAttr(ABORTED);
  }

  private static final io.netty.util.AttributeKey<Boolean> ABORTED =
      io.netty.util.AttributeKey.valueOf(HalfClose.class, "aborted");

  private static void abort0(Channel ch) {
    if (!ch.isOpen()) {
      return;
    }
    ch.attr(ABORTED).set(Boolean.TRUE);
    if (ch instanceof SocketChannel && ch.isActive()) {
      ch.config().setOption(ChannelOption.SO_LINGER, 0);
    }
    // Closing from the TLS handler's own context passes it by: no close_notify is sent.
    ChannelHandlerContext tls = ch.pipeline().context(SslHandler.class);
    if (tls != null) {
      tls.close();
    } else {
      ch.close();
    }
  }
}

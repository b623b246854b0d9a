package io.egresstunnel.proto.net;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.channel.socket.DuplexChannel;
import io.netty.util.ReferenceCountUtil;
import java.util.function.LongConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Relays bytes between two sockets on the same event loop, with half-close: an EOF on one side
 * shuts down the other side's output once the data before it is written, and both close when both
 * directions are done. Each direction has one read in flight at most; the next read waits until the
 * previous write completed, so a slow peer holds one read buffer and no more.
 */
public final class Splice {
  private static final Logger log = LoggerFactory.getLogger(Splice.class);

  private final Channel a;
  private final Channel b;
  private int directionsDone;
  private long bytesAToB;
  private long bytesBToA;

  private Splice(Channel a, Channel b) {
    this.a = a;
    this.b = b;
  }

  /**
   * Starts relaying between {@code a} and {@code b} (both AUTO_READ off, both on one event loop,
   * half-closure allowed). Handlers are added last in each pipeline.
   */
  public static void start(Channel a, Channel b) {
    start(a, b, n -> {}, n -> {});
  }

  /**
   * As {@link #start(Channel, Channel)}, and reports the bytes relayed: {@code aToB} gets the size
   * of every read of {@code a} as it is written to {@code b}, {@code bToA} the other way.
   */
  public static void start(Channel a, Channel b, LongConsumer aToB, LongConsumer bToA) {
    if (a.eventLoop() != b.eventLoop()) {
      throw new IllegalArgumentException("a splice needs both channels on one event loop");
    }
    Splice s = new Splice(a, b);
    a.pipeline().addLast("splice", s.new Direction(b, n -> s.relayed(true, n, aToB)));
    b.pipeline().addLast("splice", s.new Direction(a, n -> s.relayed(false, n, bToA)));
    s.logCloseAtDebug();
    Transport.readUnlessShut(a);
    Transport.readUnlessShut(b);
  }

  private void relayed(boolean aToB, long n, LongConsumer report) {
    if (aToB) {
      bytesAToB += n;
    } else {
      bytesBToA += n;
    }
    report.accept(n);
  }

  /**
   * Once both sockets are closed, one debug line: the target, the bytes each way and how long it
   * lasted. Splices are the server's direct connections, so there is no node to name.
   */
  private void logCloseAtDebug() {
    if (!log.isDebugEnabled()) {
      return;
    }
    long started = System.nanoTime();
    Object from = a.remoteAddress();
    Object to = b.remoteAddress();
    a.closeFuture()
        .addListener(
            f ->
                b.closeFuture()
                    .addListener(
                        g ->
                            log.debug(
                                "direct connection from {} to {} (no node) closed: {} bytes sent,"
                                    + " {} received, {} ms",
                                from,
                                to,
                                bytesAToB,
                                bytesBToA,
                                (System.nanoTime() - started) / 1_000_000)));
  }

  private void directionDone() {
    if (++directionsDone == 2) {
      a.close();
      b.close();
    }
  }

  /** Copies what its channel reads to {@code out}. */
  private final class Direction extends ChannelInboundHandlerAdapter {
    private final Channel out;
    private final LongConsumer relayed;

    Direction(Channel out, LongConsumer relayed) {
      this.out = out;
      this.relayed = relayed;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      if (!out.isActive()) {
        ReferenceCountUtil.release(msg);
        return;
      }
      if (msg instanceof ByteBuf buf) {
        relayed.accept(buf.readableBytes());
      }
      out.writeAndFlush(msg)
          .addListener(
              (ChannelFutureListener)
                  f -> {
                    if (f.isSuccess()) {
                      Transport.readUnlessShut(ctx.channel());
                    } else {
                      ctx.channel().close();
                      out.close();
                    }
                  });
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
      if (evt instanceof ChannelInputShutdownEvent) {
        if (out instanceof DuplexChannel duplex && out.isActive()) {
          out.writeAndFlush(Unpooled.EMPTY_BUFFER)
              .addListener(f -> duplex.shutdownOutput().addListener(g -> directionDone()));
        } else {
          directionDone();
        }
        return;
      }
      ReferenceCountUtil.release(evt);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      // Flush what was already written, then close the other side too.
      out.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      ctx.close();
    }
  }
}

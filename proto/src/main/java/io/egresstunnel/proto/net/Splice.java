package io.egresstunnel.proto.net;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.ReferenceCountUtil;
import java.util.function.LongConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Relays bytes between two sockets on the same event loop, with half-close: an EOF on one side
 * shuts down the other side's output once the data before it is written ({@link HalfClose}), and
 * both close when both directions are done. A socket that fails or closes before that aborts the
 * other one with a reset, so a cut transfer never looks complete. Each direction has one read in
 * flight at most, and what a read brings is written with one flush; the next read waits until that
 * write completed, so a slow peer holds one read's bytes and no more.
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
      // After whatever is still being written (a relay that ends whole may have a write in flight).
      a.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
      b.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
    }
  }

  /** Something went wrong before both directions finished: both sockets end with a reset. */
  private void abort() {
    HalfClose.abort(a);
    HalfClose.abort(b);
  }

  /** Copies what its channel reads to {@code out}. */
  private final class Direction extends ChannelInboundHandlerAdapter {
    private final Channel out;
    private final LongConsumer relayed;
    private boolean ended;
    private ChannelFuture batchEnd; // the last write not yet flushed, while a flush is queued

    Direction(Channel out, LongConsumer relayed) {
      this.out = out;
      this.relayed = relayed;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      if (ended || !out.isActive()) {
        ReferenceCountUtil.release(msg);
        return;
      }
      if (msg instanceof ByteBuf buf) {
        relayed.accept(buf.readableBytes());
      }
      // What one read brings goes out with one flush: a TLS socket hands over a record (at most
      // 16 KiB) at a time, several per read, and a flush each cost a system call each.
      boolean first = batchEnd == null;
      batchEnd = out.write(msg);
      if (first) {
        ctx.channel().eventLoop().execute(() -> flushBatch(ctx));
      }
    }

    /** Flushes what the last read brought; its last write's completion reads on. */
    private void flushBatch(ChannelHandlerContext ctx) {
      ChannelFuture last = batchEnd;
      batchEnd = null;
      out.flush();
      last.addListener(
          (ChannelFutureListener)
              f -> {
                if (f.isSuccess()) {
                  if (!ended) {
                    Transport.readUnlessShut(ctx.channel());
                  }
                } else {
                  abort();
                }
              });
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
      if (HalfClose.isEndOfInput(evt)) {
        if (!ended) {
          ended = true; // TLS says it twice: close_notify, then the FIN
          boolean whole = !HalfClose.canHalfClose(out) || !HalfClose.canHalfClose(ctx.channel());
          HalfClose.shutdownOutput(out)
              .addListener(
                  f -> {
                    if (!f.isSuccess()) {
                      abort();
                    } else if (whole) {
                      // One side cannot go on one way (a gRPC call): the relay ends here.
                      directionsDone = 1;
                      directionDone();
                    } else {
                      directionDone();
                    }
                  });
        }
        return;
      }
      ReferenceCountUtil.release(evt);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      if (directionsDone < 2) {
        abort(); // closed under us (reset, error, shutdown) before both directions finished
      }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      abort();
    }
  }
}

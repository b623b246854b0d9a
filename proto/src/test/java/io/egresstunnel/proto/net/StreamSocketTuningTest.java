package io.egresstunnel.proto.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOutboundBuffer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.socket.SocketChannel;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link Transport#tuneStreamSocket}: the unsent limit bounds what the kernel takes from a stream
 * whose reader stopped (epoll), and a fixed receive buffer is applied on either transport.
 */
class StreamSocketTuningTest {

  @AfterEach
  void restoreDefaults() {
    Transport.unsentLimit(Transport.DEFAULT_UNSENT_LIMIT);
    Transport.receiveBuffer(Transport.DEFAULT_RECEIVE_BUFFER);
  }

  @Test
  void aStalledReadersKernelBufferHoldsNoMoreThanTheUnsentLimit() throws Exception {
    assumeTrue(Epoll.isAvailable());
    Transport.unsentLimit(64 * 1024);
    EventLoopGroup g = new MultiThreadIoEventLoopGroup(1, new EpollInterestFix());
    try (Socket reader = new Socket()) {
      reader.setReceiveBufferSize(16 * 1024); // and it never reads
      Channel ch = accepted(g, EpollServerSocketChannel.class, reader);
      assertThat(((EpollSocketChannel) ch).config().getTcpNotSentLowAt()).isEqualTo(64 * 1024);
      int total = 8 << 20;
      ch.writeAndFlush(Unpooled.wrappedBuffer(new byte[total]));
      long pending = settledPending(ch);
      // What left Netty is in the kernel: at most the unsent limit, plus what the reader's small
      // window lets be in flight, plus one write's overshoot. Without the limit it may be MiBs.
      assertThat(total - pending).isLessThan(512 * 1024);
      ch.close().sync();
    } finally {
      g.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"nio", "epoll"})
  void aFixedReceiveBufferIsAppliedOnEitherTransport(String transport) throws Exception {
    TestIo io = TestIo.of(transport);
    Transport.receiveBuffer(384 * 1024);
    EventLoopGroup g = new MultiThreadIoEventLoopGroup(1, io.factory());
    try (Socket peer = new Socket()) {
      Channel ch = accepted(g, io.serverClass(), peer);
      // Linux doubles what it is given, for its bookkeeping.
      assertThat(((SocketChannel) ch).config().getReceiveBufferSize())
          .isGreaterThanOrEqualTo(384 * 1024);
      ch.close().sync();
    } finally {
      g.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
    }
  }

  @Test
  void negativeSizesAreRefused() {
    assertThatThrownBy(() -> Transport.unsentLimit(-1)).hasMessageContaining("0 or more");
    assertThatThrownBy(() -> Transport.receiveBuffer(-1)).hasMessageContaining("0 or more");
  }

  /**
   * A stream's socket reads no more than its limit (the stream's credit) at a time, on either
   * transport, and full-size again once the limit is lifted.
   */
  @ParameterizedTest
  @ValueSource(strings = {"nio", "epoll"})
  void readsTakeNoMoreThanTheirLimit(String transport) throws Exception {
    TestIo io = TestIo.of(transport);
    EventLoopGroup g = new MultiThreadIoEventLoopGroup(1, io.factory());
    try (Socket peer = new Socket()) {
      Channel ch = accepted(g, io.serverClass(), peer);
      java.util.List<Integer> reads = new java.util.concurrent.CopyOnWriteArrayList<>();
      ch.eventLoop()
          .submit(
              () -> {
                Transport.limitReads(ch, () -> 10_000);
                ch.pipeline()
                    .addLast(
                        new ChannelInboundHandlerAdapter() {
                          @Override
                          public void channelRead(ChannelHandlerContext ctx, Object msg) {
                            io.netty.buffer.ByteBuf buf = (io.netty.buffer.ByteBuf) msg;
                            reads.add(buf.readableBytes());
                            buf.release();
                          }
                        });
              })
          .sync();
      peer.getOutputStream().write(new byte[200_000]);
      awaitTotal(reads, 200_000);
      assertThat(reads).allSatisfy(n -> assertThat(n).isLessThanOrEqualTo(10_000));
      reads.clear();
      Transport.limitReads(ch, null);
      peer.getOutputStream().write(new byte[4 << 20]);
      awaitTotal(reads, 4 << 20);
      assertThat(reads).anySatisfy(n -> assertThat(n).isGreaterThan(10_000));
      ch.close().sync();
    } finally {
      g.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
    }
  }

  private static void awaitTotal(java.util.List<Integer> reads, int total) {
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(20))
        .until(() -> reads.stream().mapToInt(Integer::intValue).sum() == total);
  }

  /** Connects {@code client} to a fresh server; returns the accepted child, tuned. */
  static Channel accepted(
      EventLoopGroup g, Class<? extends ServerChannel> serverClass, Socket client)
      throws Exception {
    CompletableFuture<Channel> child = new CompletableFuture<>();
    Channel server =
        new ServerBootstrap()
            .group(g)
            .channel(serverClass)
            .childHandler(
                new ChannelInitializer<Channel>() {
                  @Override
                  protected void initChannel(Channel ch) {
                    Transport.tuneStreamSocket(ch);
                    ch.pipeline()
                        .addLast(
                            new ChannelInboundHandlerAdapter() {
                              @Override
                              public void channelActive(ChannelHandlerContext ctx) {
                                child.complete(ctx.channel());
                              }
                            });
                  }
                })
            .bind(new InetSocketAddress("127.0.0.1", 0))
            .sync()
            .channel();
    client.connect(server.localAddress(), 10_000);
    Channel ch = child.get(10, TimeUnit.SECONDS);
    server.close().sync();
    return ch;
  }

  /** Netty's pending outbound bytes once they stop changing (the kernel took what it would). */
  private static long settledPending(Channel ch) throws Exception {
    long last = -1;
    for (int same = 0; same < 5; ) {
      Thread.sleep(100);
      long now =
          ch.eventLoop()
              .submit(
                  () -> {
                    ChannelOutboundBuffer out = ch.unsafe().outboundBuffer();
                    return out == null ? 0L : out.totalPendingWriteBytes();
                  })
              .get();
      same = now == last ? same + 1 : 0;
      last = now;
    }
    return last;
  }
}

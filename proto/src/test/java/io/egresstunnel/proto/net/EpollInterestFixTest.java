package io.egresstunnel.proto.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.util.ReferenceCountUtil;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The minimal reproducer of Netty 4.2.18's epoll fault that {@link EpollInterestFix} works around,
 * with Netty alone: a server channel with AUTO_READ off sees its client's FIN, so its interest set
 * empties and Netty deletes the fd from epoll; a write bigger than the socket buffers then has to
 * wait for EPOLLOUT, Netty asks for it with EPOLL_CTL_MOD on the deleted fd, gets ENOENT, and the
 * write fails with most of its bytes lost. The half-closed client reads a truncated answer.
 */
class EpollInterestFixTest {
  private static final int ANSWER = 8 * 1024 * 1024;

  @Test
  void nettysOwnEpollHandlerLosesTheAnswerToAHalfClosedClient() throws Exception {
    assumeTrue(Epoll.isAvailable());
    Outcome raw = answerAfterClientFin(EpollIoHandler.newFactory());
    // When this fails, Netty keeps its registration state right: drop EpollInterestFix.
    assertThat(raw.writeSucceeded() && raw.received() == ANSWER)
        .as("Netty %s: write %s, %d of %d bytes", raw, raw.writeSucceeded(), raw.received(), ANSWER)
        .isFalse();
  }

  @Test
  void withTheFixTheHalfClosedClientGetsEveryByte() throws Exception {
    assumeTrue(Epoll.isAvailable());
    Outcome fixed = answerAfterClientFin(new EpollInterestFix());
    assertThat(fixed.writeSucceeded()).isTrue();
    assertThat(fixed.received()).isEqualTo(ANSWER);
  }

  record Outcome(boolean writeSucceeded, long received) {}

  private static Outcome answerAfterClientFin(IoHandlerFactory factory) throws Exception {
    EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, factory);
    CompletableFuture<ChannelFuture> answer = new CompletableFuture<>();
    try {
      Channel server =
          new ServerBootstrap()
              .group(group)
              .channel(EpollServerSocketChannel.class)
              .childOption(ChannelOption.AUTO_READ, false)
              .childOption(ChannelOption.ALLOW_HALF_CLOSURE, true)
              .childHandler(
                  new ChannelInboundHandlerAdapter() {
                    @Override
                    public void channelActive(ChannelHandlerContext ctx) {
                      ctx.read();
                    }

                    @Override
                    public void channelRead(ChannelHandlerContext ctx, Object msg) {
                      ReferenceCountUtil.release(msg);
                      ctx.read();
                    }

                    @Override
                    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
                      if (evt == ChannelInputShutdownEvent.INSTANCE) {
                        // Let the loop settle the interest set (now empty) before answering.
                        ctx.executor()
                            .schedule(
                                () ->
                                    answer.complete(
                                        ctx.writeAndFlush(Unpooled.wrappedBuffer(new byte[ANSWER]))
                                            .addListener(f -> ctx.close())),
                                50,
                                TimeUnit.MILLISECONDS);
                      }
                    }
                  })
              .bind(new InetSocketAddress("127.0.0.1", 0))
              .sync()
              .channel();
      try (Socket client = new Socket()) {
        client.setReceiveBufferSize(64 * 1024);
        client.connect(server.localAddress());
        client.getOutputStream().write('x');
        client.shutdownOutput();
        ChannelFuture write = answer.get(10, TimeUnit.SECONDS);
        long received = 0;
        byte[] buf = new byte[64 * 1024];
        InputStream in = client.getInputStream();
        try {
          for (int n; (n = in.read(buf)) > 0; ) {
            received += n;
          }
        } catch (java.net.SocketException reset) {
          // a lost answer may also end in a reset
        }
        write.await(10, TimeUnit.SECONDS);
        return new Outcome(write.isSuccess(), received);
      } finally {
        server.close().sync();
      }
    } finally {
      group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
    }
  }
}

package io.egresstunnel.proto.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.channel.socket.DuplexChannelConfig;
import io.netty.channel.socket.nio.NioServerDomainSocketChannel;
import io.netty.channel.unix.DomainSocketAddress;
import io.netty.util.ReferenceCountUtil;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Why the Unix-socket listener needs epoll (Transport's class comment), with Netty alone: a client
 * sends a request, shuts down its sending side, and reads the answer that the server writes once it
 * sees the end of the request. Netty 4.2.18's NIO domain channel ignores half-closure even when its
 * config says so, and closes the socket at the client's FIN, so the answer is lost; epoll's domain
 * channel delivers it.
 */
class DomainSocketHalfCloseTest {
  private static final int ANSWER = 1024 * 1024;

  @Test
  void nettysNioDomainChannelClosesAtTheClientsFin(@TempDir Path dir) throws Exception {
    Path sock = dir.resolve("nio.sock");
    long got =
        answerAfterClientFin(
            NioIoHandler.newFactory(),
            NioServerDomainSocketChannel.class,
            UnixDomainSocketAddress.of(sock),
            sock);
    // When this fails, Netty's NIO domain channel half-closes: --uds may then run on NIO too.
    assertThat(got).isZero();
  }

  @Test
  void epollsDomainChannelAnswersAfterTheClientsFin(@TempDir Path dir) throws Exception {
    assumeTrue(Epoll.isAvailable());
    Path sock = dir.resolve("epoll.sock");
    long got =
        answerAfterClientFin(
            new EpollInterestFix(),
            EpollServerDomainSocketChannel.class,
            new DomainSocketAddress(sock.toFile()),
            sock);
    assertThat(got).isEqualTo(ANSWER);
  }

  private static long answerAfterClientFin(
      IoHandlerFactory factory,
      Class<? extends ServerChannel> serverClass,
      SocketAddress bindTo,
      Path sock)
      throws Exception {
    EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, factory);
    try {
      Channel server =
          new ServerBootstrap()
              .group(group)
              .channel(serverClass)
              .childOption(ChannelOption.AUTO_READ, false)
              .childHandler(
                  new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel ch) {
                      // Set directly: NIO's domain channel does not know the option by name.
                      ((DuplexChannelConfig) ch.config()).setAllowHalfClosure(true);
                      ch.pipeline().addLast(new AnswerAtEof());
                    }
                  })
              .bind(bindTo)
              .sync()
              .channel();
      try (SocketChannel client = SocketChannel.open(StandardProtocolFamily.UNIX)) {
        client.connect(UnixDomainSocketAddress.of(sock));
        client.write(ByteBuffer.wrap(new byte[] {'x'}));
        client.shutdownOutput();
        long received = 0;
        ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
        try {
          for (int n; (n = client.read(buf.clear())) > 0; ) {
            received += n;
          }
        } catch (java.io.IOException reset) {
          // the lost answer may also end in a reset
        }
        return received;
      } finally {
        server.close().sync();
      }
    } finally {
      group.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS).sync();
    }
  }

  /** Reads the request to its end, then answers and closes. */
  private static final class AnswerAtEof extends ChannelInboundHandlerAdapter {
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
        ctx.writeAndFlush(Unpooled.wrappedBuffer(new byte[ANSWER])).addListener(f -> ctx.close());
      }
    }
  }
}

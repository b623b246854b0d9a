package io.egresstunnel.proto.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@link HalfClose#abort} is a reset on either transport; a shut output is a clean end. */
class HalfCloseTest {

  @ParameterizedTest
  @ValueSource(strings = {"nio", "epoll"})
  void anAbortedSocketIsAResetAtThePeer(String transport) throws Exception {
    Socket client = accepted(transport, ch -> HalfClose.abort(ch));
    try (client) {
      InputStream in = client.getInputStream();
      assertThatThrownBy(() -> drain(in))
          .isInstanceOf(SocketException.class)
          .hasMessageContaining("reset");
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"nio", "epoll"})
  void aShutOutputIsACleanEndAfterTheData(String transport) throws Exception {
    Socket client =
        accepted(
            transport,
            ch -> {
              ch.write(Unpooled.wrappedBuffer(new byte[100_000]));
              HalfClose.shutdownOutput(ch);
            });
    try (client) {
      assertThat(drain(client.getInputStream())).isEqualTo(100_000);
    }
  }

  private static long drain(InputStream in) throws java.io.IOException {
    long n = 0;
    byte[] buf = new byte[8192];
    for (int r; (r = in.read(buf)) > 0; ) {
      n += r;
    }
    return n;
  }

  /** A client socket whose server side, once accepted with data pending, gets {@code action}. */
  private static Socket accepted(String transport, java.util.function.Consumer<Channel> action)
      throws Exception {
    TestIo io = TestIo.of(transport);
    EventLoopGroup g = new MultiThreadIoEventLoopGroup(1, io.factory());
    CompletableFuture<Channel> child = new CompletableFuture<>();
    Channel server =
        new ServerBootstrap()
            .group(g)
            .channel(io.serverClass())
            .childOption(ChannelOption.AUTO_READ, false)
            .childOption(ChannelOption.ALLOW_HALF_CLOSURE, true)
            .childHandler(
                new ChannelInboundHandlerAdapter() {
                  @Override
                  public void channelActive(io.netty.channel.ChannelHandlerContext ctx) {
                    child.complete(ctx.channel());
                  }
                })
            .bind(new InetSocketAddress("127.0.0.1", 0))
            .sync()
            .channel();
    Socket client = new Socket();
    client.connect(server.localAddress());
    client.setSoTimeout(10_000);
    Channel ch = child.get(10, TimeUnit.SECONDS);
    ch.eventLoop().submit(() -> action.accept(ch)).sync();
    server.close().sync();
    g.shutdownGracefully(0, 1, TimeUnit.SECONDS);
    return client;
  }
}

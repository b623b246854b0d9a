package io.egresstunnel.proto.net;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.netty.channel.IoHandlerFactory;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioServerSocketChannel;

/** A transport by name, for tests run on each: its loops and its TCP server channel. */
record TestIo(IoHandlerFactory factory, Class<? extends ServerChannel> serverClass) {

  /** "epoll" (the test is skipped where epoll cannot load) or "nio". */
  static TestIo of(String transport) {
    if (transport.equals("epoll")) {
      assumeTrue(Epoll.isAvailable());
      return new TestIo(new EpollInterestFix(), EpollServerSocketChannel.class);
    }
    return new TestIo(NioIoHandler.newFactory(), NioServerSocketChannel.class);
  }
}

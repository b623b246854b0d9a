package io.egresstunnel.proto.net;

import io.netty.channel.AdaptiveRecvByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.RecvByteBufAllocator;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.DuplexChannel;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerDomainSocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import java.util.concurrent.ThreadFactory;

/**
 * The one place that chooses the transport. NIO by default: Netty 4.2.18's epoll transport deletes
 * a channel's fd from epoll once its interest set is empty (after a half-close, say) but keeps
 * modifying it afterwards, so a write that then has to wait for EPOLLOUT fails with ENOENT and the
 * output is shut down, losing data (found by ConnectHardeningTest). {@code
 * -Degress.transport=epoll} selects epoll where it is available.
 */
public final class Transport {
  private static final boolean EPOLL =
      "epoll".equals(System.getProperty("egress.transport", "nio")) && Epoll.isAvailable();

  /**
   * Socket reads start at 128 KiB and may grow to 256 KiB: big chunks halve CPU per GB, and a
   * stalled stream holds at most one read.
   */
  public static final int MIN_READ = 4 * 1024;

  public static final int INITIAL_READ = 128 * 1024;
  public static final int MAX_READ = 256 * 1024;

  private Transport() {}

  public static boolean isNative() {
    return EPOLL;
  }

  /** An event-loop group of {@code threads} loops; 0 means one per core (not Netty's two). */
  public static EventLoopGroup newGroup(int threads, ThreadFactory threadFactory) {
    if (threads == 0) {
      threads = Runtime.getRuntime().availableProcessors();
    }
    IoHandlerFactory factory = EPOLL ? EpollIoHandler.newFactory() : NioIoHandler.newFactory();
    return new MultiThreadIoEventLoopGroup(threads, threadFactory, factory);
  }

  public static Class<? extends ServerChannel> serverChannel() {
    return EPOLL ? EpollServerSocketChannel.class : NioServerSocketChannel.class;
  }

  public static Class<? extends SocketChannel> socketChannel() {
    return EPOLL ? EpollSocketChannel.class : NioSocketChannel.class;
  }

  /** The Unix-domain server channel of the chosen transport. */
  public static Class<? extends ServerChannel> domainServerChannel() {
    return EPOLL ? EpollServerDomainSocketChannel.class : NioServerDomainSocketChannel.class;
  }

  /** The address to bind a Unix-domain server channel of the chosen transport to. */
  public static java.net.SocketAddress domainSocketAddress(java.nio.file.Path path) {
    return EPOLL
        ? new io.netty.channel.unix.DomainSocketAddress(path.toFile())
        : java.net.UnixDomainSocketAddress.of(path);
  }

  /** The receive-buffer sizing for data channels. */
  public static RecvByteBufAllocator dataReadAllocator() {
    return new AdaptiveRecvByteBufAllocator(MIN_READ, INITIAL_READ, MAX_READ);
  }

  /**
   * Asks {@code ch} for one more read unless its input has been shut down. Call on the channel's
   * event loop. An EOF may arrive between deciding to read and reading, and epoll refuses a read on
   * a shut input with an error that would close the channel.
   */
  public static void readUnlessShut(Channel ch) {
    if (ch instanceof DuplexChannel duplex && duplex.isInputShutdown()) {
      return;
    }
    ch.read();
  }
}

package io.egresstunnel.proto.net;

import io.netty.channel.AdaptiveRecvByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.RecvByteBufAllocator;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
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
 * The one place that chooses the transport: epoll where Netty's native library loads (Linux), NIO
 * elsewhere. The commands' {@code --transport} flag ({@link #choose}) or {@code
 * -Degress.transport=auto|epoll|nio} picks one; the choice is made once per process. Two faults of
 * Netty 4.2.18 shape this class:
 *
 * <ul>
 *   <li>Its epoll handler loses track of a channel it removed from epoll, so a half-closed socket
 *       could fail a later write and lose data; {@link EpollInterestFix} works around it.
 *   <li>Its NIO Unix-domain channel ignores half-closure: it neither accepts the {@code
 *       ALLOW_HALF_CLOSURE} option ("Unknown channel option") nor honours it, because {@code
 *       AbstractNioByteChannel} reads the setting only from a TCP socket's config. A client's
 *       {@code shutdown(SHUT_WR)} therefore closes the whole socket and the answer still on its way
 *       is lost. Epoll's domain channel does half-close, so the Unix-socket listener needs epoll
 *       ({@link #supportsDomainHalfClosure()}).
 * </ul>
 */
public final class Transport {
  /** Which transport to run. */
  public enum Kind {
    /** epoll where it is available, NIO elsewhere. */
    AUTO,
    EPOLL,
    NIO
  }

  private static volatile Boolean epoll; // decided once, on first use or by choose()

  /**
   * Socket reads start at 128 KiB and may grow to 256 KiB: big chunks halve CPU per GB, and a
   * stalled stream holds at most one read.
   */
  public static final int MIN_READ = 4 * 1024;

  public static final int INITIAL_READ = 128 * 1024;
  public static final int MAX_READ = 256 * 1024;

  /**
   * The default of {@link #unsentLimit(int)}: a stream's socket towards its client or target holds
   * at most this much not yet sent in the kernel, beside what TCP has in flight.
   */
  public static final int DEFAULT_UNSENT_LIMIT = 128 * 1024;

  private static volatile int unsentLimit = DEFAULT_UNSENT_LIMIT;

  /**
   * The default of {@link #receiveBuffer(int)}: the credit window's size, which already bounds a
   * stream's speed over the agent's link, where the round trip is longest.
   */
  public static final int DEFAULT_RECEIVE_BUFFER = 256 * 1024;

  private static volatile int receiveBuffer = DEFAULT_RECEIVE_BUFFER;

  private Transport() {}

  /**
   * Sets {@code TCP_NOTSENT_LOWAT} for the sockets of streams (clients' and targets'), on epoll:
   * without it the kernel lets a socket whose reader has stopped queue up to {@code
   * net.ipv4.tcp_wmem}'s maximum (4 MiB by default) before the socket stops being writable, and the
   * credit window is returned for bytes that then only sit in the kernel. 0 leaves the kernel's
   * setting ({@code net.ipv4.tcp_notsent_lowat}). NIO cannot set it.
   */
  public static void unsentLimit(int bytes) {
    if (bytes < 0) {
      throw new IllegalArgumentException("the unsent limit must be 0 or more, not " + bytes);
    }
    unsentLimit = bytes;
  }

  /** The current {@link #unsentLimit(int)}. */
  public static int unsentLimit() {
    return unsentLimit;
  }

  /**
   * Applies the settings of a stream's TCP socket (a client's or a target's) that the bootstrap
   * options cannot express per transport: {@link #unsentLimit(int)} on epoll and {@link
   * #receiveBuffer(int)} on any TCP socket, and reads that a stream can limit to its credit ({@link
   * #limitReads}) on every stream socket. Call from the channel's initializer; the socket options
   * leave Unix sockets alone.
   */
  public static void tuneStreamSocket(Channel ch) {
    ch.config().setRecvByteBufAllocator(new LimitedReadAllocator());
    int limit = unsentLimit;
    if (limit > 0 && ch instanceof EpollSocketChannel epollChannel) {
      epollChannel.config().setTcpNotSentLowAt(limit);
    }
    int rcv = receiveBuffer;
    if (rcv > 0 && ch instanceof SocketChannel socket) {
      socket.config().setReceiveBufferSize(rcv);
    }
  }

  /**
   * Fixes {@code SO_RCVBUF} of the streams' sockets (clients' and targets'), on every transport; 0
   * leaves it to the kernel's receive autotuning, which grows a socket's buffer up to {@code
   * net.ipv4.tcp_rmem}'s maximum. A fixed size bounds the kernel memory of a stream whose far end
   * stopped reading (the tunnel stops reading its sender once the credit window is used), at the
   * price of a per-stream throughput of at most about size / round-trip time.
   */
  public static void receiveBuffer(int bytes) {
    if (bytes < 0) {
      throw new IllegalArgumentException("the receive buffer must be 0 or more, not " + bytes);
    }
    receiveBuffer = bytes;
  }

  /** The current {@link #receiveBuffer(int)}. */
  public static int receiveBuffer() {
    return receiveBuffer;
  }

  private static volatile boolean splice = !"false".equals(System.getProperty("egress.splice"));

  /**
   * Whether sessions splice DATA payloads between the websocket and the streams' sockets where they
   * can (epoll, plaintext both sides; docs/architecture.md, "Splicing"). On unless {@code --splice
   * off} or {@code -Degress.splice=false}; sessions read it when they start.
   */
  public static void splice(boolean on) {
    splice = on;
  }

  /** The current {@link #splice(boolean)}. */
  public static boolean splicing() {
    return splice;
  }

  /**
   * Chooses the transport before anything uses it. Choosing what is already in use is fine;
   * anything else throws {@link IllegalStateException}, and epoll where it cannot load throws
   * {@link IllegalArgumentException} with the reason.
   */
  public static synchronized void choose(Kind kind) {
    boolean wanted = decide(kind);
    if (epoll != null && epoll != wanted) {
      throw new IllegalStateException("the transport is " + name() + " already");
    }
    epoll = wanted;
  }

  private static boolean decide(Kind kind) {
    return switch (kind) {
      case AUTO -> Epoll.isAvailable();
      case NIO -> false;
      case EPOLL -> {
        if (!Epoll.isAvailable()) {
          throw new IllegalArgumentException(
              "--transport epoll: epoll is not available here ("
                  + Epoll.unavailabilityCause().getMessage()
                  + "); use auto or nio");
        }
        yield true;
      }
    };
  }

  private static boolean epoll() {
    Boolean e = epoll;
    return e != null ? e : chooseFromProperty();
  }

  private static synchronized boolean chooseFromProperty() {
    if (epoll == null) {
      String property = System.getProperty("egress.transport", "auto");
      Kind kind =
          java.util.Arrays.stream(Kind.values())
              .filter(k -> k.name().equalsIgnoreCase(property))
              .findFirst()
              .orElse(Kind.AUTO);
      epoll = kind == Kind.EPOLL ? Epoll.isAvailable() : decide(kind);
    }
    return epoll;
  }

  public static boolean isNative() {
    return epoll();
  }

  /** The transport's name, for logs and status: {@code epoll} or {@code nio}. */
  public static String name() {
    return epoll() ? "epoll" : "nio";
  }

  /**
   * The transport and whether streams splice, for startup lines: {@code "epoll transport, splice
   * on"}, {@code "epoll transport, splice off"}, or {@code "nio transport"} (NIO cannot splice).
   */
  public static String describe() {
    return epoll() ? "epoll transport, splice " + (splice ? "on" : "off") : "nio transport";
  }

  /**
   * Whether the chosen transport's Unix-domain channel half-closes (class comment): true for epoll,
   * false for NIO.
   */
  public static boolean supportsDomainHalfClosure() {
    return epoll();
  }

  /** An event-loop group of {@code threads} loops; 0 means one per core (not Netty's two). */
  public static EventLoopGroup newGroup(int threads, ThreadFactory threadFactory) {
    if (threads == 0) {
      threads = Runtime.getRuntime().availableProcessors();
    }
    IoHandlerFactory factory = epoll() ? new EpollInterestFix() : NioIoHandler.newFactory();
    return new MultiThreadIoEventLoopGroup(threads, threadFactory, factory);
  }

  public static Class<? extends ServerChannel> serverChannel() {
    return epoll() ? EpollServerSocketChannel.class : NioServerSocketChannel.class;
  }

  public static Class<? extends SocketChannel> socketChannel() {
    return epoll() ? EpollSocketChannel.class : NioSocketChannel.class;
  }

  /** The Unix-domain server channel of the chosen transport. */
  public static Class<? extends ServerChannel> domainServerChannel() {
    return epoll() ? EpollServerDomainSocketChannel.class : NioServerDomainSocketChannel.class;
  }

  /** The address to bind a Unix-domain server channel of the chosen transport to. */
  public static java.net.SocketAddress domainSocketAddress(java.nio.file.Path path) {
    return epoll()
        ? new io.netty.channel.unix.DomainSocketAddress(path.toFile())
        : java.net.UnixDomainSocketAddress.of(path);
  }

  /**
   * Waits until every loop of {@code group} has run the tasks queued so far, and the tasks those
   * queued: call before {@code shutdownGracefully}, which closes every channel plainly before it
   * runs the tasks that are left, so that resets already set off are sent as resets.
   */
  public static void settle(EventLoopGroup group) {
    if (group.isShuttingDown()) {
      return;
    }
    for (int round = 0; round < 2; round++) {
      for (io.netty.util.concurrent.EventExecutor loop : group) {
        loop.submit(() -> {}).awaitUninterruptibly(1, java.util.concurrent.TimeUnit.SECONDS);
      }
    }
  }

  /** The receive-buffer sizing for data channels. */
  private static RecvByteBufAllocator dataReadAllocator() {
    return new AdaptiveRecvByteBufAllocator(MIN_READ, INITIAL_READ, MAX_READ);
  }

  /**
   * Read sizes as {@link #dataReadAllocator()}, each read at most what a {@link #limit} says at the
   * time (at least a byte): a stream's socket reads no more than the stream's credit, so a stream
   * that stalls holds nothing beyond its window; the websocket's splice tap ends reads at frame
   * headers. One per channel, set before the channel's first read: Netty keeps the handle.
   */
  public static final class LimitedReadAllocator implements RecvByteBufAllocator {
    private final RecvByteBufAllocator sizes = dataReadAllocator();
    private volatile java.util.function.IntSupplier limit;

    /** Limits the reads from now on; null lifts the limit. */
    public void limit(java.util.function.IntSupplier limit) {
      this.limit = limit;
    }

    @Override
    public Handle newHandle() {
      return new LimitedHandle((ExtendedHandle) sizes.newHandle());
    }

    private final class LimitedHandle extends DelegatingHandle implements ExtendedHandle {
      LimitedHandle(ExtendedHandle delegate) {
        super(delegate);
      }

      @Override
      public io.netty.buffer.ByteBuf allocate(io.netty.buffer.ByteBufAllocator alloc) {
        return alloc.ioBuffer(guess());
      }

      @Override
      public int guess() {
        int guess = delegate().guess();
        java.util.function.IntSupplier l = limit;
        return l == null ? guess : Math.max(1, Math.min(guess, l.getAsInt()));
      }

      @Override
      public boolean continueReading(io.netty.util.UncheckedBooleanSupplier maybeMoreDataSupplier) {
        return ((ExtendedHandle) delegate()).continueReading(maybeMoreDataSupplier);
      }
    }
  }

  /**
   * Limits {@code ch}'s reads to what {@code limit} says, if its reads are a {@link
   * LimitedReadAllocator}'s ({@link #tuneStreamSocket} and the agent links set one); null lifts it.
   */
  public static void limitReads(Channel ch, java.util.function.IntSupplier limit) {
    if (ch.config().getRecvByteBufAllocator() instanceof LimitedReadAllocator a) {
      a.limit(limit);
    }
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

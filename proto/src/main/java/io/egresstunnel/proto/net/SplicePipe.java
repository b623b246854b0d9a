package io.egresstunnel.proto.net;

import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.FileRegion;
import io.netty.channel.epoll.AbstractEpollStreamChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.epoll.Native;
import io.netty.channel.unix.FileDescriptor;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.AbstractReferenceCounted;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;

/**
 * A kernel pipe that moves one stream's bytes from the websocket's socket to the stream's own
 * socket with {@code splice(2)}: the payload of a DATA frame never enters the process. The
 * websocket's reader {@link #fill fills} it; each filled part becomes a {@link #region}, a {@link
 * FileRegion} written to the stream's socket in order with its other writes, which Netty's epoll
 * transport drains into the socket as the socket takes it.
 *
 * <p>Single-threaded: the websocket and the stream's socket share one event loop ({@link
 * #canDrainInto}), which is the only thread that touches the pipe. The pipe is reference counted:
 * the stream holds one reference and every region one more; the pipe's descriptors close with the
 * last, and whatever it still holds is dropped by the kernel.
 */
public final class SplicePipe extends AbstractReferenceCounted {
  private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(SplicePipe.class);
  private final FileDescriptor readEnd;
  private final FileDescriptor writeEnd;
  private final int capacity;
  private long held;

  private SplicePipe(FileDescriptor[] ends, int capacity) {
    this.readEnd = ends[0];
    this.writeEnd = ends[1];
    this.capacity = capacity;
  }

  /** The kernel's pipe size when nobody asks for another: 16 pages. */
  public static final int KERNEL_DEFAULT_SIZE = 64 * 1024;

  /**
   * The smallest pipe worth splicing through. A pipe holds at most this much, so each splice(2)
   * moves at most this much: below it, copying through the process's 256 KiB reads costs less.
   * Pipes come smaller when the user's pipe pages pass {@code fs.pipe-user-pages-soft} (the kernel
   * then gives unprivileged users 2-page pipes and refuses to grow them).
   */
  public static final int MIN_SIZE = 64 * 1024;

  /** The default {@link #size(int)}. */
  public static final int DEFAULT_SIZE = 256 * 1024;

  /**
   * The most the kernel lets an unprivileged process ask a pipe to hold ({@code fs.pipe-max-size}'s
   * default).
   */
  public static final int MAX_SIZE = 1024 * 1024;

  private static volatile int size = DEFAULT_SIZE;

  /**
   * Sets how much each pipe is asked to hold ({@code F_SETPIPE_SZ}), {@link #MIN_SIZE} to {@link
   * #MAX_SIZE}. A spliced frame is at most a pipe's size, so larger pipes mean fewer splice(2)
   * calls per byte; the kernel allocates a pipe's pages only as bytes pass, so an idle pipe costs
   * its descriptors and little else.
   *
   * @throws IllegalArgumentException outside that range
   */
  public static void size(int bytes) {
    if (bytes < MIN_SIZE || bytes > MAX_SIZE) {
      throw new IllegalArgumentException(
          "a splice pipe's size must be from 64KiB to 1MiB, not " + bytes + " bytes");
    }
    size = bytes;
  }

  /** The current {@link #size(int)}. */
  public static int size() {
    return size;
  }

  /** How much this pipe holds: what the kernel granted of {@link #size()}. */
  public int capacity() {
    return capacity;
  }

  /**
   * Pipes open in this process, and the most that may be: a quarter of the process's file
   * descriptor limit (each pipe takes two), so that pipes never take the descriptors that sockets
   * need. Beyond it a stream copies, as it would without splicing.
   */
  private static final java.util.concurrent.atomic.AtomicInteger open =
      new java.util.concurrent.atomic.AtomicInteger();

  private static volatile int maxOpen = defaultMaxOpen();

  /**
   * When the kernel last gave a pipe below {@link #MIN_SIZE}: for a second after, no pipe is asked
   * for, so that streams copy without a pipe's system calls for every frame they would splice.
   */
  private static volatile long smallPipeAt = System.nanoTime() - Long.MAX_VALUE / 2;

  private static final long SMALL_PIPE_BACKOFF_NANOS = 1_000_000_000L;
  private static volatile boolean smallPipeLogged;

  private static int defaultMaxOpen() {
    long fds = 1024;
    if (java.lang.management.ManagementFactory.getOperatingSystemMXBean()
        instanceof com.sun.management.UnixOperatingSystemMXBean unix) {
      fds = unix.getMaxFileDescriptorCount();
    }
    return (int) Math.max(16, Math.min(Integer.MAX_VALUE, fds / 4));
  }

  /** The most pipes this process opens at once (tests set a small one). */
  public static void maxOpen(int pipes) {
    maxOpen = pipes;
  }

  /** The current {@link #maxOpen(int)}. */
  public static int maxOpen() {
    return maxOpen;
  }

  /** Pipes open now. */
  public static int openCount() {
    return open.get();
  }

  /**
   * A new non-blocking pipe.
   *
   * @throws IOException if {@link #maxOpen()} pipes are open already, or the kernel refuses one
   */
  public static SplicePipe open() throws IOException {
    if (System.nanoTime() - smallPipeAt < SMALL_PIPE_BACKOFF_NANOS) {
      throw new IOException("the kernel gave a pipe too small to splice through just now");
    }
    if (open.incrementAndGet() > maxOpen) {
      open.decrementAndGet();
      throw new IOException("the process has " + maxOpen + " pipes open already");
    }
    try {
      FileDescriptor[] ends = FileDescriptor.pipe();
      int capacity = PipeSize.resize(ends[1].intValue(), size);
      if (capacity >= MIN_SIZE) {
        return new SplicePipe(ends, capacity);
      }
      closeQuietly(ends[0]);
      closeQuietly(ends[1]);
      throw smallPipe(capacity);
    } catch (IOException | RuntimeException e) {
      open.decrementAndGet();
      throw e;
    }
  }

  /** Notes a pipe the kernel gave below {@link #MIN_SIZE} (warned once), and says why. */
  private static IOException smallPipe(int capacity) {
    smallPipeAt = System.nanoTime();
    String why =
        "the kernel gave a pipe of "
            + capacity
            + " bytes, too small to splice through (this user's pipes reached"
            + " fs.pipe-user-pages-soft?); streams copy instead, and ask again after a second";
    if (!smallPipeLogged) {
      smallPipeLogged = true;
      log.warn("{} (said once)", why);
    }
    return new IOException(why);
  }

  /**
   * A new pipe, or null when none can be had ({@link #open}'s reasons, logged at debug): the caller
   * then copies, as it would without splicing.
   */
  public static SplicePipe openOrNull() {
    try {
      return open();
    } catch (IOException e) {
      log.debug("no pipe to splice through ({}); copying instead", e.getMessage());
      return null;
    }
  }

  /**
   * Whether a stream's bytes can be spliced between {@code websocket}, a plaintext epoll socket
   * (one a splice tap was installed on), and {@code local}: an open epoll TCP socket on the same
   * event loop without TLS (a TLS record must be decrypted in the process).
   */
  public static boolean canDrainInto(Channel websocket, Channel local) {
    return local instanceof EpollSocketChannel
        && local.isActive()
        && local.eventLoop() == websocket.eventLoop()
        && local.pipeline().get(SslHandler.class) == null;
  }

  /** The file descriptor of an epoll channel, for splicing from or to it. */
  public static int fd(Channel ch) {
    return ((AbstractEpollStreamChannel) ch).fd().intValue();
  }

  /**
   * Moves up to {@code len} bytes from the socket {@code sourceFd} into the pipe, without blocking.
   *
   * @return the bytes moved: 0 if the socket has none now (or its peer ended) or the pipe is full
   */
  public int fill(int sourceFd, int len) throws IOException {
    int n = Native.splice(sourceFd, -1, writeEnd.intValue(), -1, len);
    held += n;
    return n;
  }

  /** Moves up to {@code len} bytes from {@code source}'s pipe into this one: pages, not bytes. */
  private int moveFrom(SplicePipe source, long len) throws IOException {
    int n = Native.splice(source.readEnd.intValue(), -1, writeEnd.intValue(), -1, len);
    source.held -= n;
    held += n;
    return n;
  }

  /**
   * Writes {@code bytes} into the pipe; an empty pipe always takes a websocket and frame header.
   */
  private int write(ByteBuf bytes) throws IOException {
    ByteBuffer nio = bytes.nioBuffer();
    int n = writeEnd.write(nio, nio.position(), nio.limit());
    held += n;
    return n;
  }

  /** Splices up to {@code len} bytes from the pipe into the socket {@code targetFd}. */
  private int drain(int targetFd, long len) throws IOException {
    int n = Native.splice(readEnd.intValue(), -1, targetFd, -1, len);
    held -= n;
    return n;
  }

  /** Bytes filled in and not yet drained into a socket. */
  public long held() {
    return held;
  }

  /**
   * A region for the next {@code count} bytes in the pipe, to write to the epoll channel {@code
   * local}. It holds a reference to this pipe until it is released.
   */
  public FileRegion region(int count, Channel local) {
    retain();
    return new Region(count, fd(local));
  }

  @Override
  protected void deallocate() {
    closeQuietly(readEnd);
    closeQuietly(writeEnd);
    open.decrementAndGet();
  }

  private static void closeQuietly(FileDescriptor fd) {
    try {
      fd.close();
    } catch (IOException ignored) {
      // a pipe's close cannot lose data that matters: what it holds is dropped on purpose
    }
  }

  @Override
  public SplicePipe touch(Object hint) {
    return this;
  }

  /**
   * A whole websocket message for the websocket {@code websocket}: {@code header} (the websocket
   * and frame headers, which this region releases), then the next {@code payload} bytes of this
   * pipe. They pass through {@code staging}, the session's pipe for its sends, so that header and
   * payload leave in one {@code splice(2)} and so in one TCP segment train, not a tiny segment for
   * the header first. Write it only when this pipe holds exactly the payload, and only one such
   * region per staging pipe can be in progress: the websocket writes its regions one at a time.
   */
  public FileRegion framed(ByteBuf header, int payload, SplicePipe staging, Channel websocket) {
    retain();
    staging.retain();
    return new Framed(header, payload, staging, fd(websocket));
  }

  /**
   * Bytes of this pipe written to a socket as a {@link FileRegion}: Netty's epoll transport calls
   * {@link #transferTo} while the socket takes bytes, and waits for it to become writable when it
   * takes none. A region holds a reference to this pipe until it is released.
   */
  private abstract class PipeRegion extends AbstractReferenceCounted implements FileRegion {
    final int targetFd;
    final long count;
    long transferred;

    PipeRegion(long count, int targetFd) {
      this.count = count;
      this.targetFd = targetFd;
    }

    @Override
    public long position() {
      return 0;
    }

    @Override
    @Deprecated
    public long transfered() {
      return transferred;
    }

    @Override
    public long transferred() {
      return transferred;
    }

    @Override
    public long count() {
      return count;
    }

    @Override
    protected void deallocate() {
      SplicePipe.this.release();
    }

    @Override
    public PipeRegion retain() {
      super.retain();
      return this;
    }

    @Override
    public PipeRegion retain(int increment) {
      super.retain(increment);
      return this;
    }

    @Override
    public PipeRegion touch() {
      return this;
    }

    @Override
    public PipeRegion touch(Object hint) {
      return this;
    }
  }

  /** The next {@code count} bytes of the pipe, spliced straight into the socket. */
  private final class Region extends PipeRegion {
    Region(int count, int targetFd) {
      super(count, targetFd);
    }

    /** Splices the region's next bytes from the pipe into the socket; 0 when the socket is full. */
    @Override
    public long transferTo(WritableByteChannel target, long position) throws IOException {
      int n = drain(targetFd, count - transferred);
      transferred += n;
      return n;
    }
  }

  /** A websocket message: its headers, then payload bytes of the pipe, through a staging pipe. */
  private final class Framed extends PipeRegion {
    private final ByteBuf header;
    private final SplicePipe staging;
    private long payloadLeft;

    Framed(ByteBuf header, int payload, SplicePipe staging, int targetFd) {
      super(header.readableBytes() + (long) payload, targetFd);
      this.header = header;
      this.staging = staging;
      this.payloadLeft = payload;
    }

    @Override
    public long transferTo(WritableByteChannel target, long position) throws IOException {
      long done = 0;
      while (transferred < count) {
        if (staging.held == 0) {
          if (header.isReadable()) {
            header.skipBytes(staging.write(header));
          }
          if (payloadLeft > 0) {
            payloadLeft -= staging.moveFrom(SplicePipe.this, payloadLeft);
          }
        }
        int n = staging.drain(targetFd, staging.held);
        if (n == 0) {
          break; // the socket is full: Netty waits until it is writable
        }
        transferred += n;
        done += n;
      }
      return done;
    }

    @Override
    protected void deallocate() {
      header.release();
      staging.release();
      super.deallocate();
    }
  }
}

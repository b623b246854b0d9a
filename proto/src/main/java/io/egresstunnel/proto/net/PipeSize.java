package io.egresstunnel.proto.net;

/**
 * A pipe's size, through {@code fcntl(2)} ({@code F_SETPIPE_SZ}, {@code F_GETPIPE_SZ}), which
 * Netty's natives do not offer; JNA calls the C library's. Where JNA cannot load, pipes keep the
 * kernel's default size.
 */
final class PipeSize {
  private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(PipeSize.class);
  private static final int F_SETPIPE_SZ = 1031;
  private static final int F_GETPIPE_SZ = 1032;
  private static final boolean AVAILABLE = load();

  private PipeSize() {}

  private static boolean load() {
    try {
      com.sun.jna.Native.register(PipeSize.class, "c");
      return true;
    } catch (LinkageError | RuntimeException e) {
      log.info(
          "splice pipes keep the kernel's default size of 64 KiB: fcntl is not reachable ({})",
          e.toString());
      return false;
    }
  }

  private static native int fcntl(int fd, int cmd, int arg);

  /**
   * Asks the kernel to let the pipe whose end is {@code fd} hold {@code bytes}, and returns what it
   * holds now: the kernel rounds up to a power of two pages, and may refuse (the user's pipe pages
   * are past {@code fs.pipe-user-pages-soft}, or {@code bytes} is past {@code fs.pipe-max-size}),
   * leaving the pipe as it was.
   */
  static int resize(int fd, int bytes) {
    if (!AVAILABLE) {
      return SplicePipe.KERNEL_DEFAULT_SIZE;
    }
    int granted = fcntl(fd, F_SETPIPE_SZ, bytes);
    return granted > 0 ? granted : fcntl(fd, F_GETPIPE_SZ, 0);
  }
}

package io.egresstunnel.proto.config;

import io.egresstunnel.proto.net.SplicePipe;
import io.egresstunnel.proto.net.Transport;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Option;
import picocli.CommandLine.TypeConversionException;

/**
 * The flags both commands share: the config file and logging. A picocli mixin ({@code @Mixin
 * CommonOptions common;}); like every flag, they may also come from the environment, and the
 * logging ones from the config file.
 */
public final class CommonOptions {

  @Option(
      names = {"-c", ConfigSources.CONFIG_OPTION},
      paramLabel = "FILE",
      description =
          "YAML file of settings whose keys are the flags' names without dashes (log-level: debug)."
              + " Flags and environment variables win over it.")
  public Path config;

  @Option(
      names = "--log-level",
      paramLabel = "LEVEL",
      defaultValue = "info",
      converter = LevelConverter.class,
      description =
          "trace, debug, info, warn or error. Libraries (Netty, the Kubernetes client) log only"
              + " warnings and errors, and their info at debug, their debug at trace."
              + " Default: ${DEFAULT-VALUE}.")
  public Logging.Level logLevel = Logging.Level.INFO;

  @Option(
      names = "--log-format",
      paramLabel = "FORMAT",
      defaultValue = "text",
      converter = FormatConverter.class,
      description =
          "text (one readable line per event) or json (one JSON object per line), on stderr."
              + " Default: ${DEFAULT-VALUE}.")
  public Logging.Format logFormat = Logging.Format.TEXT;

  @Option(
      names = "--transport",
      paramLabel = "KIND",
      defaultValue = "auto",
      converter = TransportConverter.class,
      description =
          "auto (epoll on Linux, NIO elsewhere), epoll or nio. The server's --uds needs epoll: NIO's Unix"
              + " sockets cannot half-close. Default: ${DEFAULT-VALUE}.")
  public Transport.Kind transport = Transport.Kind.AUTO;

  /** What {@code --splice} takes. */
  public enum SpliceMode {
    AUTO,
    OFF
  }

  @Option(
      names = "--splice",
      paramLabel = "MODE",
      defaultValue = "auto",
      converter = SpliceConverter.class,
      description =
          "auto: on epoll, move the bytes of streams between the agent link and their sockets"
              + " with splice(2), inside the kernel, where both are plaintext TCP (a ws:// link, a"
              + " TCP client or target; never with TLS). off: always copy them through the"
              + " process. Default: ${DEFAULT-VALUE}.")
  public SpliceMode splice = SpliceMode.AUTO;

  @Option(
      names = "--splice-pipe-size",
      paramLabel = "SIZE",
      defaultValue = "256KiB",
      converter = SizeConverter.class,
      description =
          "How much each splice pipe holds (64KiB..1MiB), and so the most one spliced frame"
              + " carries: larger means fewer system calls per byte. A pipe that the kernel gives"
              + " smaller than 64KiB (an unprivileged user past fs.pipe-user-pages-soft) is not"
              + " used: that stream copies. Default: ${DEFAULT-VALUE}.")
  public int splicePipeSize = SplicePipe.DEFAULT_SIZE;

  @Option(
      names = "--tcp-unsent-limit",
      paramLabel = "SIZE",
      defaultValue = "128KiB",
      converter = SizeConverter.class,
      description =
          "TCP_NOTSENT_LOWAT of each stream's socket towards its client or target (epoll only):"
              + " the most that waits unsent in the kernel when the reader is slow, so a stalled"
              + " reader holds its credit window and little more. 0 leaves the kernel's setting"
              + " (net.ipv4.tcp_notsent_lowat). Default: ${DEFAULT-VALUE}.")
  public int tcpUnsentLimit = Transport.DEFAULT_UNSENT_LIMIT;

  @Option(
      names = "--tcp-receive-buffer",
      paramLabel = "SIZE",
      defaultValue = "256KiB",
      converter = SizeConverter.class,
      description =
          "SO_RCVBUF of each stream's socket from its client or target (the local legs; the"
              + " agent's link is not affected). It bounds the kernel memory of a stream whose"
              + " reader stalled, and caps that leg's speed at about SIZE per round trip, as the"
              + " credit window already does on the agent's link. 0 lets the kernel autotune it"
              + " (up to net.ipv4.tcp_rmem's maximum). Default: ${DEFAULT-VALUE}.")
  public int tcpReceiveBuffer = Transport.DEFAULT_RECEIVE_BUFFER;

  /**
   * Chooses the transport as {@code --transport} says; a usage error (epoll where it cannot load)
   * is an IllegalArgumentException naming the flag.
   */
  public void configureTransport() {
    Transport.choose(transport);
    Transport.unsentLimit(tcpUnsentLimit);
    Transport.receiveBuffer(tcpReceiveBuffer);
    Transport.splice(splice == SpliceMode.AUTO);
    try {
      SplicePipe.size(splicePipeSize);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("--splice-pipe-size: " + e.getMessage(), e);
    }
  }

  /** Sets logging up as these flags say. */
  public void configureLogging() {
    Logging.configure(logFormat, logLevel);
  }

  /** Case-insensitive, whatever the command line's enum setting. */
  static <E extends Enum<E>> E parse(Class<E> type, String value) {
    for (E constant : type.getEnumConstants()) {
      if (constant.name().equalsIgnoreCase(value.strip())) {
        return constant;
      }
    }
    throw new TypeConversionException(
        "'"
            + value
            + "' is not one of "
            + Arrays.stream(type.getEnumConstants())
                .map(c -> c.name().toLowerCase(Locale.ROOT))
                .collect(Collectors.joining(", ")));
  }

  static final class LevelConverter implements ITypeConverter<Logging.Level> {
    @Override
    public Logging.Level convert(String value) {
      return parse(Logging.Level.class, value);
    }
  }

  static final class TransportConverter implements ITypeConverter<Transport.Kind> {
    @Override
    public Transport.Kind convert(String value) {
      return parse(Transport.Kind.class, value);
    }
  }

  static final class SpliceConverter implements ITypeConverter<SpliceMode> {
    @Override
    public SpliceMode convert(String value) {
      return parse(SpliceMode.class, value);
    }
  }

  static final class SizeConverter implements ITypeConverter<Integer> {
    @Override
    public Integer convert(String value) {
      try {
        return Units.parseSize(value);
      } catch (IllegalArgumentException e) {
        throw new TypeConversionException(e.getMessage());
      }
    }
  }

  static final class FormatConverter implements ITypeConverter<Logging.Format> {
    @Override
    public Logging.Format convert(String value) {
      return parse(Logging.Format.class, value);
    }
  }
}

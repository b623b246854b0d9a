package io.egresstunnel.proto.config;

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
          "YAML file of settings whose keys are the flags' names without dashes (max-agents: 5)."
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

  /**
   * Chooses the transport as {@code --transport} says; a usage error (epoll where it cannot load)
   * is an IllegalArgumentException naming the flag.
   */
  public void configureTransport() {
    Transport.choose(transport);
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

  static final class FormatConverter implements ITypeConverter<Logging.Format> {
    @Override
    public Logging.Format convert(String value) {
      return parse(Logging.Format.class, value);
    }
  }
}

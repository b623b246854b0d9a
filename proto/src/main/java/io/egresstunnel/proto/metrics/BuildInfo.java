package io.egresstunnel.proto.metrics;

import io.egresstunnel.proto.net.Transport;
import io.prometheus.metrics.core.metrics.Info;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Properties;

/**
 * What a running process is: its version (from the build), the I/O transport in use and its egress
 * mode, as the gauge {@code P_build_info} with value 1, the usual Prometheus way to join such facts
 * to other series.
 */
public final class BuildInfo {
  private static final String VERSION = readVersion();

  private BuildInfo() {}

  /** The version the build stamped, e.g. {@code 0.1.0-SNAPSHOT}; {@code unknown} without one. */
  public static String version() {
    return VERSION;
  }

  /**
   * Registers {@code prefix + "build_info"} in {@code registry}, labelled {@code version}, {@code
   * transport} ({@link Transport#name()}: this fixes the transport if nothing has yet) and {@code
   * mode}.
   */
  public static void register(PrometheusRegistry registry, String prefix, String mode) {
    Info info =
        Info.builder()
            .name(prefix + "build_info")
            .help("Always 1: the version, the I/O transport in use (epoll, nio) and the mode.")
            .labelNames("version", "transport", "mode")
            .register(registry);
    info.setLabelValues(VERSION, Transport.name(), mode);
  }

  private static String readVersion() {
    try (InputStream in = BuildInfo.class.getResourceAsStream("build.properties")) {
      if (in == null) {
        return "unknown";
      }
      Properties p = new Properties();
      p.load(in);
      String v = p.getProperty("version", "");
      return v.isBlank() || v.startsWith("${") ? "unknown" : v.strip();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}

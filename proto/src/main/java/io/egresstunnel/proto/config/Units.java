package io.egresstunnel.proto.config;

import io.netty.util.NetUtil;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.Locale;

/**
 * Parsers for flag values shared by server and agent: durations ({@code 500ms}, {@code 10s}, {@code
 * 2m}), sizes ({@code 65536}, {@code 64Ki}, {@code 256KiB}, {@code 1Mi}) and listen addresses
 * ({@code 127.0.0.1:8090}, {@code [::1]:8090}, {@code :8090}). Errors say what form is expected.
 */
public final class Units {
  private Units() {}

  public static Duration parseDuration(String text) {
    String s = text.trim().toLowerCase(Locale.ROOT);
    try {
      if (s.endsWith("ms")) {
        return Duration.ofMillis(Long.parseLong(s.substring(0, s.length() - 2)));
      }
      if (s.endsWith("s")) {
        return Duration.ofMillis(
            Math.round(Double.parseDouble(s.substring(0, s.length() - 1)) * 1000));
      }
      if (s.endsWith("m")) {
        return Duration.ofSeconds(Long.parseLong(s.substring(0, s.length() - 1)) * 60);
      }
      if (s.endsWith("h")) {
        return Duration.ofHours(Long.parseLong(s.substring(0, s.length() - 1)));
      }
      if (s.endsWith("d")) {
        return Duration.ofDays(Long.parseLong(s.substring(0, s.length() - 1)));
      }
    } catch (NumberFormatException | ArithmeticException e) {
      // fall through to the error below
    }
    throw new IllegalArgumentException(
        "not a duration: '" + text + "' (use e.g. 500ms, 10s, 2m, 1h, 365d)");
  }

  /** A duration that must be above zero; the error names the flag. */
  public static Duration parsePositiveDuration(String flag, String text) {
    Duration d;
    try {
      d = parseDuration(text);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(flag + ": " + e.getMessage(), e);
    }
    if (d.isZero() || d.isNegative()) {
      throw new IllegalArgumentException(flag + " must be positive, got " + text);
    }
    return d;
  }

  public static int parseSize(String text) {
    String s = text.trim();
    long unit = 1;
    String digits = s;
    String[][] suffixes = {{"KiB", "1024"}, {"Ki", "1024"}, {"MiB", "1048576"}, {"Mi", "1048576"}};
    for (String[] suffix : suffixes) {
      if (s.endsWith(suffix[0])) {
        unit = Long.parseLong(suffix[1]);
        digits = s.substring(0, s.length() - suffix[0].length());
        break;
      }
    }
    try {
      long value = Long.parseLong(digits.trim()) * unit;
      if (value < 0 || value > Integer.MAX_VALUE) {
        throw new NumberFormatException();
      }
      return (int) value;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(
          "not a size: '" + text + "' (use bytes, or e.g. 64Ki, 256KiB, 1Mi)", e);
    }
  }

  /** HOST:PORT, [IPv6]:PORT, or :PORT (all interfaces). Port 0 picks a free port. */
  public static InetSocketAddress parseHostPort(String text) {
    String s = text.trim();
    int colon = s.lastIndexOf(':');
    if (colon < 0) {
      throw new IllegalArgumentException("not HOST:PORT: '" + text + "'");
    }
    String host = s.substring(0, colon);
    int port;
    try {
      port = Integer.parseInt(s.substring(colon + 1));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("not HOST:PORT (bad port): '" + text + "'", e);
    }
    if (port < 0 || port > 65535) {
      throw new IllegalArgumentException("port out of range 0..65535: '" + text + "'");
    }
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    if (host.isEmpty()) {
      return new InetSocketAddress(port);
    }
    if (NetUtil.isValidIpV4Address(host) || NetUtil.isValidIpV6Address(host)) {
      return new InetSocketAddress(NetUtil.createInetAddressFromIpAddressString(host), port);
    }
    return new InetSocketAddress(host, port);
  }
}

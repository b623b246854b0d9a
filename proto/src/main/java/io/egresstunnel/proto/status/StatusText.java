package io.egresstunnel.proto.status;

import java.net.InetSocketAddress;
import java.util.List;

/** Aligned text tables and short units, for the status commands. */
public final class StatusText {
  private StatusText() {}

  /**
   * Appends {@code rows} (the first is the header) as columns two spaces apart, without trailing
   * blanks.
   */
  public static void table(StringBuilder b, List<String[]> rows) {
    int[] widths = new int[rows.get(0).length];
    for (String[] row : rows) {
      for (int i = 0; i < row.length; i++) {
        widths[i] = Math.max(widths[i], row[i].length());
      }
    }
    for (String[] row : rows) {
      StringBuilder line = new StringBuilder();
      for (int i = 0; i < row.length; i++) {
        line.append(row[i]).append(" ".repeat(widths[i] - row[i].length() + 2));
      }
      b.append(line.toString().stripTrailing()).append('\n');
    }
  }

  /** A duration: {@code 850ms}, {@code 41s}, {@code 12m}, {@code 3h}. */
  public static String age(long millis) {
    if (millis < 1_000) {
      return millis + "ms";
    }
    long s = millis / 1_000;
    if (s < 120) {
      return s + "s";
    }
    if (s < 7_200) {
      return s / 60 + "m";
    }
    return s / 3_600 + "h";
  }

  /** A byte count: {@code 812B}, {@code 38KiB}, {@code 21MiB}, {@code 12GiB}. */
  public static String bytes(long n) {
    if (n < 10 * 1024) {
      return n + "B";
    }
    if (n < 10L * 1024 * 1024) {
      return n / 1024 + "KiB";
    }
    if (n < 10L * 1024 * 1024 * 1024) {
      return n / (1024 * 1024) + "MiB";
    }
    return n / (1024L * 1024 * 1024) + "GiB";
  }

  /** Bytes per second, with the units of {@link #bytes}: {@code 0B/s}, {@code 12MiB/s}. */
  public static String rate(double bytesPerSecond) {
    return bytes(Math.round(Math.max(0, bytesPerSecond))) + "/s";
  }

  /**
   * An address read from a status answer written by {@link InetSocketAddress#toString}: {@code
   * name/1.2.3.4:80} or {@code /1.2.3.4:80} as {@code 1.2.3.4:80}; a path stays as it is.
   */
  public static String address(String a) {
    if (a == null) {
      return "-";
    }
    int slash = a.lastIndexOf('/');
    return slash >= 0 && a.indexOf(':', slash) > slash ? a.substring(slash + 1) : a;
  }
}

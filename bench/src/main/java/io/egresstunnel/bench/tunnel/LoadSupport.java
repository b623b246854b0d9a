package io.egresstunnel.bench.tunnel;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.DoubleStream;

/**
 * What the out-of-process load tools ({@link BulkLoad}, {@link DialRate}) share: their paths to the
 * target and how they are named on the command line, the CPU time of processes, and the figures of
 * their tables.
 */
final class LoadSupport {
  private LoadSupport() {}

  /**
   * A way to the target: through the HTTP CONNECT proxy at {@code proxy}, or direct ({@code null}),
   * with the processes whose CPU time it costs.
   */
  record Via(String name, InetSocketAddress proxy, List<Long> pids) {}

  /** The {@code --via NAME=HOST:PORT}, {@code --via direct} and {@code --pids NAME=PID,...}. */
  static final class Vias {
    private final Map<String, InetSocketAddress> proxies = new LinkedHashMap<>();
    private final Map<String, List<Long>> pids = new HashMap<>();

    /** Takes {@code flag} with its value if it is {@code --via} or {@code --pids}. */
    boolean take(String flag, String value) {
      if (flag.equals("--via")) {
        if (value.equals("direct")) {
          proxies.put("direct", null);
        } else {
          String[] kv = value.split("=", 2);
          proxies.put(kv[0], address(kv[1]));
        }
        return true;
      }
      if (flag.equals("--pids")) {
        String[] kv = value.split("=", 2);
        pids.put(kv[0], Arrays.stream(kv[1].split(",")).map(Long::valueOf).toList());
        return true;
      }
      return false;
    }

    /** The paths in the order given. */
    List<Via> list() {
      List<Via> list = new ArrayList<>();
      proxies.forEach((n, p) -> list.add(new Via(n, p, pids.getOrDefault(n, List.of()))));
      return list;
    }
  }

  /**
   * A socket to {@code target} with Nagle off: direct if {@code proxy} is null, otherwise through
   * the proxy, after its 200 to {@code CONNECT}; any other answer is an exception naming it.
   */
  static Socket open(InetSocketAddress proxy, InetSocketAddress target) throws IOException {
    Socket s = new Socket();
    s.setTcpNoDelay(true);
    if (proxy == null) {
      s.connect(target);
      return s;
    }
    try {
      s.connect(proxy);
      String t = target.getAddress().getHostAddress() + ":" + target.getPort();
      OutputStream out = s.getOutputStream();
      out.write(
          ("CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\n\r\n")
              .getBytes(StandardCharsets.US_ASCII));
      out.flush();
      InputStream in = s.getInputStream();
      StringBuilder head = new StringBuilder();
      while (!headEnded(head)) {
        int b = in.read();
        if (b < 0) {
          throw new IOException("the proxy closed during CONNECT: " + head);
        }
        head.append((char) b);
      }
      if (!head.toString().startsWith("HTTP/1.1 200")
          && !head.toString().startsWith("HTTP/1.0 200")) {
        throw new IOException("CONNECT refused: " + head.toString().lines().findFirst().orElse(""));
      }
      return s;
    } catch (IOException e) {
      s.close();
      throw e;
    }
  }

  /** Whether {@code head} ends with the blank line that ends an HTTP head. */
  static boolean headEnded(CharSequence head) {
    int n = head.length();
    return n >= 4
        && head.charAt(n - 4) == '\r'
        && head.charAt(n - 3) == '\n'
        && head.charAt(n - 2) == '\r'
        && head.charAt(n - 1) == '\n';
  }

  /** Prints the problem and exits 2. */
  static void usage(String tool, String problem) {
    System.err.println(tool + ": " + problem + " (see the class comment)");
    System.exit(2);
  }

  static InetSocketAddress address(String hostPort) {
    int colon = hostPort.lastIndexOf(':');
    if (colon < 0) {
      usage("bench", "not HOST:PORT: " + hostPort);
    }
    return new InetSocketAddress(
        hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1)));
  }

  /** User plus system CPU time of each process, from /proc/PID/stat. */
  static double[] cpuSeconds(List<Long> pids) throws IOException {
    double[] seconds = new double[pids.size()];
    for (int i = 0; i < seconds.length; i++) {
      String stat = Files.readString(Path.of("/proc/" + pids.get(i) + "/stat"));
      // the command may hold spaces; the fields after it are fixed
      String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      long ticks = Long.parseLong(f[11]) + Long.parseLong(f[12]); // utime, stime
      seconds[i] = ticks / 100.0; // USER_HZ on Linux
    }
    return seconds;
  }

  /** The CPU time each process spent since {@code before} was read. */
  static double[] cpuSecondsSince(double[] before, List<Long> pids) throws IOException {
    double[] now = cpuSeconds(pids);
    for (int i = 0; i < now.length; i++) {
      now[i] -= before[i];
    }
    return now;
  }

  /** Per process, the sum of the runs' CPU times. */
  static double[] sum(List<double[]> runs) {
    double[] total = new double[runs.get(0).length];
    for (double[] run : runs) {
      for (int i = 0; i < total.length; i++) {
        total[i] += run[i];
      }
    }
    return total;
  }

  /**
   * The table cell for CPU time per unit of work: the processes' sum, and each one's share if there
   * are several ({@code 1.07 (0.52 + 0.55)}); {@code —} for none.
   */
  static String cpuCell(double[] cpu, double units, String format) {
    if (cpu.length == 0) {
      return "—";
    }
    String total = fmt(format, Arrays.stream(cpu).sum() / units);
    if (cpu.length < 2) {
      return total;
    }
    List<String> each = Arrays.stream(cpu).mapToObj(c -> fmt(format, c / units)).toList();
    return total + " (" + String.join(" + ", each) + ")";
  }

  /** The median, or NaN for none. */
  static double median(DoubleStream values) {
    double[] r = values.sorted().toArray();
    if (r.length == 0) {
      return Double.NaN;
    }
    return r.length % 2 == 1 ? r[r.length / 2] : (r[r.length / 2 - 1] + r[r.length / 2]) / 2;
  }

  /** {@code value / baseline} as {@code 0.67×}, or {@code —} without a baseline. */
  static String ratio(double value, double baseline) {
    return Double.isNaN(baseline) ? "—" : fmt("%.2f×", value / baseline);
  }

  static String fmt(String format, double v) {
    return String.format(Locale.ROOT, format, v);
  }
}

package io.egresstunnel.bench.tunnel;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** What the out-of-process load tools share: argument parsing and the CPU time of processes. */
final class LoadArgs {
  private LoadArgs() {}

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
}
